"""``intyg up`` as a person runs it: start, every service ready, Ctrl-C, start again, a busy
port (issue 6 item 1)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from . import INTYG, SERVICE_NAMES, Up, free_ports, listening_pids, pids_alive, up_environment

READY_PATHS = {"eid": "/.well-known/openid-configuration"}


@pytest.fixture
def ports() -> dict[str, int]:
    return dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))


def _issuer_kids(up: Up) -> dict[str, list[str]]:
    return {
        name: sorted(key["kid"] for key in httpx.get(up.url(name) + "/jwks.json").json()["keys"])
        for name in ("issuer-af", "issuer-myh")
    }


def test_up_starts_everything_stops_cleanly_and_keeps_data(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    data = tmp_path / "data"
    up = Up(data, ports)
    try:
        up.wait_ready()
        for name in SERVICE_NAMES:
            assert up.url(name) in up.output, f"{name} URL not printed"
            response = httpx.get(up.url(name) + READY_PATHS.get(name, "/readyz"), timeout=5)
            assert response.status_code == 200, name
        assert "Anna Andersson" in up.output and "Ctrl-C" in up.output
        children = listening_pids(ports)
        assert len(children) == len(SERVICE_NAMES)
        provider_ca = (data / "wallet" / "wallet-provider-ca.pem").read_bytes()
        master_key = (data / "wallet" / "master.key").read_bytes()
        assert (data / "wallet" / "master.key").stat().st_mode & 0o777 == 0o600
        for name in SERVICE_NAMES:
            assert (data / "logs" / f"{name}.log").exists()
        assert (data / "trust" / "af-dev-ca.pem").read_text().startswith("-----BEGIN")
        kids = _issuer_kids(up)
    finally:
        code = up.stop()
    assert code == 0, up.output
    assert "Traceback" not in up.output
    assert pids_alive(children) == []

    again = Up(data, ports)
    try:
        again.wait_ready()
        assert "sample records" not in again.output  # loaded once, on the first start
        assert _issuer_kids(again) == kids
        assert (data / "wallet" / "wallet-provider-ca.pem").read_bytes() == provider_ca
        assert (data / "wallet" / "master.key").read_bytes() == master_key
    finally:
        assert again.stop() == 0, again.output


def test_port_in_use_is_a_clear_message(tmp_path: Path, ports: dict[str, int]) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", ports["issuer-myh"]))
    blocker.listen()
    try:
        result = subprocess.run(
            [*INTYG, "up"],
            env=up_environment(tmp_path / "data", ports),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        blocker.close()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"port {ports['issuer-myh']}" in output and "MYH issuer" in output
    assert "--myh-port" in output and "INTYG_UP_MYH_PORT" in output
    assert "Traceback" not in output
    assert listening_pids(ports) == []
