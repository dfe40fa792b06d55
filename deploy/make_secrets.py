"""Write fresh Docker secrets for docker-compose.yml into a folder (docs/deployment.md).

    .venv/bin/python deploy/make_secrets.py /srv/intyg/secrets
    INTYG_SECRETS_DIR=/srv/intyg/secrets docker compose ...

The development configuration reads ``deploy/dev-secrets/`` (git-ignored; make it with
``.venv/bin/python deploy/make_secrets.py deploy/dev-secrets`` before ``docker compose --profile
dev up``). A production deployment makes its own folder outside git (files mode 0600, read by
Docker Compose, which mounts each into the container as ``/run/secrets/<name>``) and then
replaces the eID files with its real eID provider's client configuration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from intyg.web.embedded import container_secrets


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    existing = [name for name in container_secrets() if (folder / name).exists()]
    if existing:
        print(f"{folder} already holds {', '.join(existing)}: not overwritten", file=sys.stderr)
        return 1
    for name, text in container_secrets().items():
        descriptor = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    print(f"secrets written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
