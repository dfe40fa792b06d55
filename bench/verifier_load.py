"""Cheap load generators for bench/verifier.py: each pre-made request body is sent exactly once.

- :func:`wrk_closed_loop`: Debian ``wrk`` (C, epoll) with ``bench/verifier_wrk.lua``:
  C keep-alive connections, each sending its next body when the last was answered. Its CPU
  time is read from the child's rusage.
- :func:`closed_loop` and :func:`open_loop`: a lean asyncio client (uvloop, one
  ``asyncio.Protocol`` per keep-alive HTTP/1.1 connection, ``httptools`` parser, requests
  rendered before timing). The open loop starts request i at ``t0 + i / rate`` whether or
  not earlier ones finished and counts latency from that scheduled time (no coordinated
  omission). Its CPU time is this process's.

Every answer's status is counted; the first few non-200 bodies are kept for the report.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import uvloop

__all__ = [
    "Outcome",
    "closed_loop",
    "open_loop",
    "percentile",
    "render",
    "wrk_available",
    "wrk_closed_loop",
]

WRK = shutil.which("wrk")
WRK_SCRIPT = Path(__file__).resolve().parent / "verifier_wrk.lua"
KEPT_ERRORS = 3


@dataclass
class Outcome:
    """One run: answers by status, wall time, latency percentiles (seconds), client CPU."""

    statuses: dict[int, int]
    elapsed: float
    percentiles: dict[int, float]
    client_cpu: float
    errors: list[str] = field(default_factory=list)
    generator: str = ""

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _percentiles(latencies: Sequence[float]) -> dict[int, float]:
    return {q: percentile(latencies, q) for q in (50, 95, 99)}


def render(host: str, port: int, path: str, bodies: Sequence[bytes]) -> list[bytes]:
    """Complete ``POST`` requests (form bodies), rendered before anything is timed."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
    ).encode("ascii")
    return [head + str(len(body)).encode("ascii") + b"\r\n\r\n" + body for body in bodies]


# -- wrk --------------------------------------------------------------------------------------


def wrk_available() -> bool:
    return WRK is not None


def wrk_closed_loop(
    base: str,
    path: str,
    bodies: Sequence[bytes],
    connections: int,
    *,
    threads: int = 1,
    max_seconds: float = 600,
    stall_seconds: float = 30,
) -> Outcome:
    """Send every body once with ``wrk`` (``connections`` keep-alive connections)."""
    assert WRK is not None, "wrk is not installed"
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="intyg-wrk-") as scratch:
        body_file = Path(scratch) / "bodies.txt"
        body_file.write_bytes(b"\n".join(bodies) + b"\n")
        marker = Path(scratch) / "done"
        command = [
            WRK,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{int(max_seconds)}s",
            "--timeout",
            "60s",
            "-s",
            str(WRK_SCRIPT),
            base,
            "--",
            str(body_file),
            str(threads),
            path,
            str(marker),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        usage = _wait_for_wrk(process, Path(scratch), threads, max_seconds, stall_seconds)
        assert process.stdout is not None
        output = process.stdout.read().decode("utf-8", "replace")
        kept = [
            line
            for errors_file in sorted(Path(scratch).glob("done-errors.*"))
            for line in errors_file.read_text("utf-8", "replace").splitlines()
        ]
    line = next((x for x in output.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    result = json.loads(line.removeprefix("RESULT "))
    statuses = {int(code): count for code, count in result["statuses"].items()}
    lost = len(bodies) - sum(statuses.values())
    errors = kept[:KEPT_ERRORS]
    if lost:
        errors.append(f"{lost} requests without an answer; wrk said: {output.strip()[-600:]}")
    return Outcome(
        statuses=statuses,
        elapsed=max(0.0, result["finished"] - result["started"]),
        percentiles={q: result[f"p{q}_us"] / 1e6 for q in (50, 95, 99)},
        client_cpu=usage.ru_utime + usage.ru_stime,
        errors=errors,
        generator=f"wrk -t{threads} -c{connections}",
    )


def _wait_for_wrk(
    process: subprocess.Popen[bytes],
    scratch: Path,
    threads: int,
    max_seconds: float,
    stall_seconds: float,
) -> resource.struct_rusage:
    """Wait until every thread is done (or nothing moved for ``stall_seconds``), interrupt
    wrk so that it prints its result, and return its resource usage."""
    deadline = time.monotonic() + max_seconds
    last_change, last_seen = time.monotonic(), -1.0
    while time.monotonic() < deadline:
        pid, _, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = 0
            return usage
        if len(list(scratch.glob("done.*"))) == threads:
            break
        seen = sum(p.stat().st_mtime for p in scratch.glob("done-progress.*"))
        if seen != last_seen:
            last_change, last_seen = time.monotonic(), seen
        elif time.monotonic() - last_change > stall_seconds:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # wrk then joins its threads and runs done()
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return usage


# -- the asyncio client -----------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None  # uvloop's transports do not subclass asyncio's
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self.body = b"".join(self.body), []
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


class _Client:
    """A fixed set of connections; a closed connection is replaced on next use."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.statuses: collections.Counter[int] = collections.Counter()
        self.errors: list[str] = []

    async def connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        return protocol

    async def send(self, connection: _Connection, request: bytes) -> _Connection:
        """Send on ``connection`` (or a fresh one) and count the answer."""
        if connection.closed:
            connection = await self.connect()
        try:
            status, body = await connection.send(request)
        except ConnectionError as exc:
            status, body = 0, repr(exc).encode()
        self.statuses[status] += 1
        if status != 200 and len(self.errors) < KEPT_ERRORS:
            self.errors.append(f"{status} {body[:200].decode('utf-8', 'replace')}")
        return connection


def _run(coroutine):  # type: ignore[no-untyped-def]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def closed_loop(host: str, port: int, requests: Sequence[bytes], connections: int) -> Outcome:
    """``connections`` connections, each sending the next request when answered."""
    return _run(_closed_loop(host, port, requests, connections))


async def _closed_loop(
    host: str, port: int, requests: Sequence[bytes], connections: int
) -> Outcome:
    client = _Client(host, port)
    pool = [await client.connect() for _ in range(connections)]
    queue = collections.deque(requests)
    latencies: list[float] = []

    async def worker(connection: _Connection) -> None:
        while queue:
            request = queue.popleft()
            started = time.perf_counter()
            connection = await client.send(connection, request)
            latencies.append(time.perf_counter() - started)
        if connection.transport is not None:
            connection.transport.close()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(c) for c in pool))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Outcome(
        dict(client.statuses),
        elapsed,
        _percentiles(latencies),
        cpu,
        client.errors,
        f"asyncio -c{connections}",
    )


def open_loop(
    host: str, port: int, requests: Sequence[bytes], rate: float, connections: int
) -> Outcome:
    """Request i starts at ``t0 + i / rate``; latency counts from that scheduled time."""
    return _run(_open_loop(host, port, requests, rate, connections))


async def _open_loop(
    host: str, port: int, requests: Sequence[bytes], rate: float, connections: int
) -> Outcome:
    client = _Client(host, port)
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await client.connect())
    latencies: list[float] = []

    async def one(request: bytes, scheduled: float) -> None:
        connection = await idle.get()
        connection = await client.send(connection, request)
        latencies.append(time.perf_counter() - scheduled)
        idle.put_nowait(connection)

    tasks = []
    cpu, started = time.process_time(), time.perf_counter()
    for index, request in enumerate(requests):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, scheduled)))
    await asyncio.gather(*tasks)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    while not idle.empty():
        connection = idle.get_nowait()
        if connection.transport is not None:
            connection.transport.close()
    return Outcome(
        dict(client.statuses),
        elapsed,
        _percentiles(latencies),
        cpu,
        client.errors,
        f"asyncio open loop {rate:.0f}/s, {connections} connections",
    )
