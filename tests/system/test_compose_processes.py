"""The very configuration of docker-compose.yml, run as processes against the local PostgreSQL
(issue 6 item 3: no Docker engine on these machines).

What is taken from the files as they are: every service's environment, command, secrets,
volumes, dependency order and healthcheck from docker-compose.yml (profile dev); the
Dockerfile's ENTRYPOINT, WORKDIR and ENV; the secret files of deploy/dev-secrets; the
database init script deploy/postgres/init-databases.sh. What a container would provide is
mapped onto this machine, and only that:

- ``/run/secrets/<name>`` and each volume's mount point -> folders under ``tmp_path``;
- ports 8400-8404 -> free ports (tests never take the ``intyg up`` ports), in the
  environment, the secrets (eID redirect URIs), the commands and the healthchecks;
- the databases and roles ``intyg_<service>`` -> ``<unique prefix>_<service>`` on the server
  of ``INTYG_TEST_POSTGRES_URL`` (several test runs may share it), created by the init script
  and dropped afterwards; PostgreSQL runs there instead of in the postgres service;
- ``INTYG_SERVE_HOST`` stays 127.0.0.1 (the image's 0.0.0.0 is for the container's
  interfaces; servers started here listen on loopback only).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import sqlalchemy as sa

from intyg.web import db
from intyg.web.embedded import DATABASE_SERVICES, DEFAULT_PORTS

from . import INTYG, PORT_VARIABLES, free_ports
from .compose import (
    ROOT,
    SECRETS_PREFIX,
    dev_secrets,
    dockerfile_instructions,
    exec_form,
    intyg_services,
    is_one_shot,
    load_compose,
    secret_files,
)
from .postgres import POSTGRES_URL, _admin_engine

START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
DEV_PROFILE = "dev"


@dataclass
class Machine:
    """This machine standing in for Docker: paths, ports and names mapped as documented."""

    root: Path
    ports: dict[str, int]
    prefix: str
    postgres: sa.URL

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / name

    def text(self, value: str) -> str:
        """Ports, database names and the PostgreSQL address, as documented above."""
        for name, port in DEFAULT_PORTS.items():
            value = value.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.ports[name]}")
        value = re.sub(
            r"\bintyg_(issuer_af|issuer_myh|verifier|wallet)\b", rf"{self.prefix}_\1", value
        )
        return value.replace("@127.0.0.1:5432/", f"@{self.postgres.host}:{self.postgres.port}/")

    def command(self, args: list[str]) -> list[str]:
        mapped = [self.text(arg) for arg in args]
        if "--port" in mapped:
            index = mapped.index("--port") + 1
            name = next(n for n, p in DEFAULT_PORTS.items() if str(p) == mapped[index])
            mapped[index] = str(self.ports[name])
        return mapped

    def paths(self, value: str, mounts: dict[str, Path]) -> str:
        """``/run/secrets/`` and mount points (the longest first) -> folders here."""
        value = value.replace(SECRETS_PREFIX, str(self.secrets_dir) + "/")
        for target in sorted(mounts, key=len, reverse=True):
            value = re.sub(rf"{re.escape(target)}(?=/|\b|$)", str(mounts[target]), value)
        return value


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path
    healthcheck: list[str] | None = None
    done: bool = field(default=False)

    def tail(self) -> str:
        self.log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()[-30:]
        return f"{self.name} log:\n" + "\n".join(lines)


def _image_environment() -> tuple[list[str], dict[str, str], str]:
    """ENTRYPOINT, ENV (without INTYG_SERVE_HOST and PATH) and WORKDIR of the final stage."""
    instructions = dockerfile_instructions()
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    entrypoint = exec_form(dict(final)["ENTRYPOINT"])
    env: dict[str, str] = {}
    for keyword, arguments in final:
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in arguments.split())  # type: ignore[misc]
    env.pop("INTYG_SERVE_HOST")
    env.pop("PATH")
    return entrypoint, env, dict(final)["WORKDIR"]


def _order(services: dict[str, dict[str, Any]]) -> list[str]:
    """Start order from depends_on (as Compose does)."""
    ordered: list[str] = []
    while len(ordered) < len(services):
        ready = [
            name
            for name, service in services.items()
            if name not in ordered
            and all(d in ordered or d == "postgres" for d in service.get("depends_on", {}))
        ]
        assert ready, "depends_on has a cycle"
        ordered.extend(sorted(ready))
    return ordered


def _healthy(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, timeout=30).returncode == 0


def _wait(running: Running, condition: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = running.process.poll()
        if condition == "service_completed_successfully":
            if code is not None:
                assert code == 0, f"{running.name} exited {code}\n{running.tail()}"
                return
        else:
            assert code is None, f"{running.name} exited {code}\n{running.tail()}"
            assert running.healthcheck is not None
            if _healthy(running.healthcheck):
                return
        time.sleep(0.5)
    raise AssertionError(f"{running.name}: not {condition} in {START_TIMEOUT} s\n{running.tail()}")


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    """Unique database names on the test server; databases and roles dropped afterwards."""
    engine = _admin_engine()
    if shutil.which("psql") is None:
        pytest.skip("psql not installed: deploy/postgres/init-databases.sh needs it")
    names = list(DEFAULT_PORTS)
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    prefix = f"intyg_c{secrets.token_hex(4)}"
    postgres = db.normalise_url(POSTGRES_URL or "")
    yield Machine(tmp_path, ports, prefix, postgres)
    with engine.connect() as connection:
        for name in DATABASE_SERVICES:
            database = f"{prefix}_{name.replace('-', '_')}"
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(sa.text(f'DROP ROLE IF EXISTS "{database}"'))
    engine.dispose()


def _write_secrets(machine: Machine, compose: dict[str, Any]) -> None:
    machine.secrets_dir.mkdir(parents=True)
    demo = dev_secrets() / "dev-secrets.json"
    for name, path in secret_files(compose).items():
        (machine.secrets_dir / name).write_text(machine.text(path.read_text()), encoding="utf-8")
    (machine.secrets_dir / demo.name).write_text(demo.read_text(), encoding="utf-8")


def _init_databases(machine: Machine, compose: dict[str, Any]) -> None:
    """The postgres service's init script, as the image runs it, against the test server."""
    service = compose["services"]["postgres"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "POSTGRES"))}
    env.update({k: machine.paths(str(v), {}) for k, v in service["environment"].items()})
    env.update(
        PGHOST=str(machine.postgres.host),
        PGPORT=str(machine.postgres.port or 5432),
        POSTGRES_USER=str(machine.postgres.username),
        POSTGRES_DB=str(machine.postgres.database),
    )
    env.pop("POSTGRES_PASSWORD_FILE")  # the test server's trust authentication
    script = ROOT / "deploy" / "postgres" / "init-databases.sh"
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _start(
    machine: Machine,
    name: str,
    service: dict[str, Any],
    image: tuple[list[str], dict[str, str], str],
) -> Running:
    entrypoint, image_env, workdir = image
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        machine.volume(source).mkdir(parents=True, exist_ok=True)
        mounts[target] = machine.volume(source)
    work = machine.root / "work" / name
    work.mkdir(parents=True)
    mounts[workdir] = work
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTYG_")}
    env.update(image_env)
    env.update(
        {k: machine.paths(machine.text(str(v)), mounts) for k, v in service["environment"].items()}
    )
    executable = str(Path(INTYG[0]).parent / entrypoint[0])
    log_path = machine.root / "logs" / f"{name}.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [executable, *entrypoint[1:], *machine.command(service["command"])],
        env=env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    check = service["healthcheck"].get("test")
    healthcheck = None
    if check:
        assert check[0] == "CMD" and check[1] == "python"
        healthcheck = [sys.executable, *machine.command(check[2:])]
    return Running(name, process, log, log_path, healthcheck)


def _stop(running: list[Running]) -> dict[str, int]:
    """SIGTERM (docker stop) in reverse start order; -> exit codes."""
    codes = {}
    for item in reversed(running):
        if item.process.poll() is None:
            item.process.send_signal(signal.SIGTERM)
    for item in reversed(running):
        try:
            codes[item.name] = item.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(item.process.pid, signal.SIGKILL)
            codes[item.name] = item.process.wait()
        item.log.close()
    return codes


def _connects(url: str) -> bool:
    engine = sa.create_engine(db.normalise_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def test_compose_configuration_runs_on_postgres(machine: Machine) -> None:
    compose = load_compose()
    services = {
        name: service
        for name, service in intyg_services(compose).items()
        if service.get("profiles", [DEV_PROFILE]) == [DEV_PROFILE]
    }
    image = _image_environment()
    _write_secrets(machine, compose)
    _init_databases(machine, compose)

    running: dict[str, Running] = {}
    try:
        for name in _order(services):
            for dependency, spec in services[name].get("depends_on", {}).items():
                if dependency != "postgres":
                    _wait(running[dependency], spec["condition"])
            running[name] = _start(machine, name, services[name], image)
        for name, item in running.items():
            _wait(
                item,
                "service_completed_successfully"
                if is_one_shot(services[name])
                else "service_healthy",
            )

        # The smoke flow: journeys A and B through the real HTTP APIs of these processes.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTYG_")}
        env.update({PORT_VARIABLES[n]: str(p) for n, p in machine.ports.items()})
        demo = subprocess.run(
            [*INTYG, "demo", "--data-dir", str(machine.secrets_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = demo.stdout + demo.stderr
        assert demo.returncode == 0, output + "\n".join(r.tail() for r in running.values())
        assert "[A] verifier result: status=verified" in output
        assert "[B] verifier result: status=verified" in output
        assert "Both journeys verified." in output
        wallet = f"http://127.0.0.1:{machine.ports['wallet']}"
        assert httpx.get(wallet + "/", timeout=5, follow_redirects=True).status_code == 200
    finally:
        long_running = [
            r
            for r in running.values()
            if r.process.poll() is None or not is_one_shot(services[r.name])
        ]
        codes = _stop(long_running)
    # uvicorn shuts down gracefully on SIGTERM, then ends by that signal (Docker: 143).
    assert set(codes.values()) <= {0, -signal.SIGTERM}, codes
    for item in long_running:
        assert "Application shutdown complete" in item.log_path.read_text(), item.name

    # Each service migrated its own database, and its role reaches no other database.
    for name in DATABASE_SERVICES:
        url = (machine.secrets_dir / f"{name}-database-url").read_text().strip()
        engine = sa.create_engine(db.normalise_url(url), poolclass=sa.NullPool)
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        engine.dispose()
        other = next(n for n in DATABASE_SERVICES if n != name)
        foreign = db.normalise_url(url).set(database=f"{machine.prefix}_{other.replace('-', '_')}")
        assert not _connects(foreign.render_as_string(hide_password=False)), (name, other)


def test_replicas_migrate_one_at_a_time(machine: Machine) -> None:
    """Two verifier replicas with the compose configuration start together on one empty
    database: the advisory lock of intyg.web.migrations lets one migrate, the other waits;
    both become ready on the same schema."""
    compose = load_compose()
    service = compose["services"]["verifier"]
    _write_secrets(machine, compose)
    _init_databases(machine, compose)
    image = _image_environment()
    second = free_ports(1)[0]
    replicas = [_start(machine, "verifier", service, image)]
    machine.ports["verifier"], first = second, machine.ports["verifier"]
    replicas.append(_start(machine, "verifier-2", service, image))
    machine.ports["verifier"] = first
    try:
        for replica in replicas:
            _wait(replica, "service_healthy")
    finally:
        codes = _stop(replicas)
    assert set(codes.values()) <= {0, -signal.SIGTERM}, codes
    url = (machine.secrets_dir / "verifier-database-url").read_text().strip()
    engine = sa.create_engine(db.normalise_url(url), poolclass=sa.NullPool)
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    assert len(versions) == 1
