"""``intyg demo``: journeys A and B over the real HTTP APIs against a fresh ``intyg up``
(issue 6 item 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import INTYG, SERVICE_NAMES, Up, free_ports, up_environment


def test_demo_runs_both_journeys(tmp_path: Path) -> None:
    ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
    data = tmp_path / "data"
    up = Up(data, ports)
    try:
        up.wait_ready()
        demo = subprocess.run(
            [*INTYG, "demo"],
            env=up_environment(data, ports),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        assert up.stop() == 0, up.output
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "[A] verifier result: status=verified" in output
    assert "[B] verifier result: status=verified" in output
    assert '"eqf_level": 5' in output  # the disclosed claim reached the employer
    assert "Utvecklingsarbetsgivaren AB" in output  # the consent record names the recipient
    assert "Both journeys verified." in output
