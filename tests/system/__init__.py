"""System tests: ``intyg up`` and ``intyg demo`` as real processes on free loopback ports.

:class:`Up` runs ``intyg up`` with a temporary data folder and collects its output in a
thread, so a test can wait for the ready marker and then stop it like a person would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

READY_MARKER = "intyg is up"
SERVICE_NAMES = ("eid", "issuer-af", "issuer-myh", "wallet", "verifier")
PORT_VARIABLES = {
    "eid": "INTYG_UP_EID_PORT",
    "issuer-af": "INTYG_UP_AF_PORT",
    "issuer-myh": "INTYG_UP_MYH_PORT",
    "wallet": "INTYG_UP_WALLET_PORT",
    "verifier": "INTYG_UP_VERIFIER_PORT",
}
#: The installed console script, as a person runs it.
INTYG = [str(Path(sys.executable).parent / "intyg")]


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out (held together so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def up_environment(data_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTYG_")}
    env["INTYG_DATA_DIR"] = str(data_dir)
    env.update({PORT_VARIABLES[name]: str(port) for name, port in ports.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Up:
    """A running ``intyg up``; ``output`` grows while it runs."""

    def __init__(
        self, data_dir: Path, ports: dict[str, int], settings: Mapping[str, str] | None = None
    ) -> None:
        """``settings``: extra ``INTYG_<SERVICE>_*`` variables; the services inherit them."""
        self.ports = ports
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*INTYG, "up"],
            env={**up_environment(data_dir, ports), **(settings or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_ready(self, timeout: float = 50.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(READY_MARKER) for line in self.lines):
                return
            if self.process.poll() is not None:
                self._reader.join(2)
                raise AssertionError(f"intyg up exited {self.process.returncode}:\n{self.output}")
            time.sleep(0.1)
        raise AssertionError(f"intyg up not ready in {timeout} s:\n{self.output}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        self._reader.join(5)
        return code


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie (already exited, not yet reaped by a dead parent) is gone for our purpose.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def listening_pids(ports: dict[str, int]) -> list[int]:
    """PIDs of our uvicorn children, found by their command line (``--port N``)."""
    wanted = {str(port) for port in ports.values()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if "uvicorn" in args and "--port" in args:
            index = args.index("--port")
            if index + 1 < len(args) and args[index + 1] in wanted:
                found.append(int(entry.name))
    return found
