"""docker-compose.yml and the Dockerfile, read the way Docker reads them (no Docker needed).

- :func:`load_compose`: the YAML (anchors and merge keys resolved by PyYAML as by Compose)
  with ``${VAR:-default}`` interpolated from a given environment (the only form the file
  uses; anything else is refused so the tests never guess).
- :func:`dockerfile_instructions`: the Dockerfile as ``(INSTRUCTION, arguments)`` pairs
  (comments and parser directives skipped, ``\\`` continuation lines joined).
- :data:`SETTINGS_BY_COMMAND`: which settings class reads the environment of a service,
  from its command (``serve issuer`` -> :class:`IssuerSettings`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from eid.settings import EidSettings
from intyg.web.embedded import DevSetupSettings
from issuer.settings import IssuerSettings
from verifier.settings import VerifierSettings
from wallet.settings import WalletSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
#: The development secrets docker-compose.yml reads by default: generated, never in git.
DEV_SECRETS = ROOT / "deploy" / "dev-secrets"


def dev_secrets() -> Path:
    """``deploy/dev-secrets``, written by ``deploy/make_secrets.py`` on first use."""
    if not (DEV_SECRETS / "dev-secrets.json").exists():
        subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "make_secrets.py"), str(DEV_SECRETS)],
            check=True,
            capture_output=True,
        )
    return DEV_SECRETS


SCHEMA_FILE = Path(__file__).resolve().parent / "compose-spec.json"
SECRETS_PREFIX = "/run/secrets/"

SETTINGS_BY_COMMAND: Mapping[tuple[str, str], type[BaseSettings]] = {
    ("serve", "eid"): EidSettings,
    ("serve", "issuer"): IssuerSettings,
    ("serve", "verifier"): VerifierSettings,
    ("serve", "wallet"): WalletSettings,
    ("dev-setup", "issuers"): DevSetupSettings,
    ("dev-setup", "verifier"): DevSetupSettings,
}

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*):-(?P<default>[^}]*)\}")


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """``${NAME:-default}``: NAME when set and not empty, else the default (Compose spec
    "Interpolation"). Any other use of ``$`` is refused."""
    result = _INTERPOLATION.sub(lambda m: environ.get(m["name"]) or m["default"], value)
    if "$" in result:
        raise ValueError(f"unsupported interpolation in {value!r}")
    return result


def _interpolate_all(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [_interpolate_all(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_all(item, environ) for key, item in node.items()}
    return node


def load_compose(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as Compose sees it with ``environ`` (default: nothing set)."""
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return dict(_interpolate_all(document, environ or {}))


def intyg_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running the intyg image (everything but PostgreSQL)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image", "").startswith("intyg:")
    }


def settings_class(service: Mapping[str, Any]) -> type[BaseSettings]:
    command = service["command"]
    return SETTINGS_BY_COMMAND[(command[0], command[1])]


def command_port(service: Mapping[str, Any]) -> int | None:
    command = service["command"]
    return int(command[command.index("--port") + 1]) if "--port" in command else None


def is_one_shot(service: Mapping[str, Any]) -> bool:
    return service.get("restart") == "no"


def secret_files(compose: Mapping[str, Any]) -> dict[str, Path]:
    """Top-level secrets -> their files (relative to the compose file's folder)."""
    return {name: ROOT / spec["file"] for name, spec in compose["secrets"].items()}


def dockerfile_instructions(text: str | None = None) -> list[tuple[str, str]]:
    """The Dockerfile's instructions in order, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8") if text is None else text
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue  # comments and parser directives (# syntax=...)
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
    if pending:
        raise ValueError("the Dockerfile ends inside a continued instruction")
    return instructions


def exec_form(arguments: str) -> list[str]:
    """``["a", "b"]`` (exec form) of ENTRYPOINT/CMD; a shell-form string is refused."""
    value = json.loads(arguments)
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise ValueError(f"not the exec form: {arguments}")
    return value
