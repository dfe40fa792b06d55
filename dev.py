#!/usr/bin/env python3
"""Newcomer bootstrap: `python3 dev.py up` runs intyg, `python3 dev.py test` runs every test.

Needs only Python >= 3.11 with pip. Creates `.venv/` next to this file, installs the pinned
versions from `constraints.txt` (again only when pyproject.toml or constraints.txt changed),
then hands over to the `intyg` command or to pytest inside that environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".dev-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _inputs_digest() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create the virtual environment and install intyg with its pinned dependencies."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file must speak to old Pythons
        sys.exit(f"intyg needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = _inputs_digest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("Installing intyg and its pinned dependencies into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-c", "constraints.txt", "-e", ".[dev]"], cwd=ROOT, check=True)
    STAMP.write_text(wanted)


def _run(command: list[str], **options: object) -> int:
    """Run ``command``; Ctrl-C is the child's to handle (``intyg up`` stops its services
    cleanly), so this wrapper passes it on and waits instead of printing a traceback."""
    process = subprocess.Popen(command, cwd=ROOT, **options)  # type: ignore[call-overload]
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)


def _test_env() -> dict[str, str]:
    """Outside CI, tests that need a tool this machine lacks are skipped loudly, not failed."""
    env = dict(os.environ)
    if not env.get("CI") and shutil.which("node") is None:
        print("note: Node.js not found: the independent OpenID Provider interop test is skipped")
        env["INTYG_SKIP_NODE_INTEROP"] = "1"
    return env


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"up", "test", "intyg"}:
        print("usage: python3 dev.py up | test [pytest args] | intyg [args]")
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "test":
        return _run([str(BIN / "python"), "-m", "pytest", *rest], env=_test_env())
    if command == "up":
        return _run([str(BIN / "intyg"), "up", *rest])
    return _run([str(BIN / "intyg"), *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
