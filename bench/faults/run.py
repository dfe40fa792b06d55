"""Run one fault scenario (issue 7 item 4; docs/reliability.md) and print its table row.

    .venv/bin/python bench/faults/run.py NAME      # NAME: see --help
    .venv/bin/python bench/faults/run.py all       # every scenario, one row each

Each scenario starts the whole system on free loopback ports with a temporary data folder
(tests/reliability/system.py), hurts it in one scripted way, checks what the person and the
employer saw, runs the invariant checker (I1-I5) and prints the row for docs/reliability.md.
Exit code 1 when a scenario's criteria or an invariant failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability.faults import SCENARIOS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    failed = 0
    for name in names:
        started = time.monotonic()
        row = SCENARIOS[name]()
        print(f"{name}: {'passed' if row.ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
        for line in row.report.lines()[1:]:
            print("  " + line)
        print(row.markdown(), flush=True)
        failed += not row.ok
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
