"""The embedded deployment shape (design.md "Deployment shapes"): ``intyg up``.

Starts, on loopback, the development eID provider, the Arbetsförmedlingen and MYH issuers,
the verifier and the wallet, each as ``python -m uvicorn <module>:create_app_from_env
--factory`` with its own ``INTYG_<SERVICE>_*`` environment, its own folder (SQLite file,
master key) under one data folder, and its output in ``<data>/logs/<service>.log``. The
services are named by module strings only: this module never imports them.

Wiring, in start order (each service waits for the previous one's ``/readyz``):

1. **eID** with one registered client per relying party (exact redirect URIs), a signing key
   kept in ``eid/signing-key.jwk`` so ID tokens verify across restarts.
2. **Issuers** log in with that eID; they trust ``wallet/wallet-provider-ca.pem``, read on the
   first wallet attestation (so the wallet may write it later). Their development CAs are
   copied to ``trust/af-dev-ca.pem`` and ``trust/myh-dev-ca.pem``.
3. **Verifier** with the development trust list over ``trust/`` and the development employer;
   its development CA goes to ``trust/verifier-dev-ca.pem``.
4. **Wallet** trusting the issuers' and the verifier's CAs, with a verifier registry naming
   the development employer.

First start only: per-service master keys, the secrets of ``dev-secrets.json`` (eID clients,
back-office and employer API clients, the employer page's ``dev-user``; read by ``intyg demo``)
and the sample records of the eID test persons (through the issuers' back-office API). Later
starts reuse all of it.

On PostgreSQL (``INTYG_UP_POSTGRES_URL=postgresql://user@host:port/NAME``) the issuers, the
verifier and the wallet keep their records in the databases ``NAME_issuer_af``,
``NAME_issuer_myh``, ``NAME_verifier`` and ``NAME_wallet`` (created when missing) instead of
SQLite files; keys, secrets and the eID's codes stay in the data folder, which belongs with
those databases.

The container deployment (docker-compose.yml, docs/deployment.md) reuses the same wiring:
:func:`container_secrets` makes its secret files, :func:`dev_setup` (``intyg dev-setup``) is
its development wiring.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from intyg import jose, oid4vp, x509
from intyg.schemas import QUALIFICATION_ATTESTATION_VCT, REGISTRATION_CERTIFICATE_VCT
from intyg.web import db
from intyg.web.crypto_store import generate_master_key
from intyg.web.settings import SecretFileSettings

__all__ = [
    "DEFAULT_PORTS",
    "HOST",
    "SERVICES",
    "EmbeddedError",
    "Layout",
    "Service",
    "run",
]

HOST = "127.0.0.1"
DEFAULT_PORTS: Mapping[str, int] = {
    "eid": 8400,
    "issuer-af": 8401,
    "issuer-myh": 8402,
    "wallet": 8403,
    "verifier": 8404,
}
#: Per service: the ``intyg up`` option and the environment variable that move its port.
PORT_OPTIONS: Mapping[str, tuple[str, str]] = {
    "eid": ("--eid-port", "INTYG_UP_EID_PORT"),
    "issuer-af": ("--af-port", "INTYG_UP_AF_PORT"),
    "issuer-myh": ("--myh-port", "INTYG_UP_MYH_PORT"),
    "wallet": ("--wallet-port", "INTYG_UP_WALLET_PORT"),
    "verifier": ("--verifier-port", "INTYG_UP_VERIFIER_PORT"),
}
READY_MARKER = "intyg is up"
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_LINES = 25
SECRETS_FILE = "dev-secrets.json"
SAMPLE_DATA_STAMP = "sample-data.loaded"
#: ``intyg up`` on PostgreSQL: the server, and the prefix of the databases (its path).
POSTGRES_URL_VARIABLE = "INTYG_UP_POSTGRES_URL"
#: Unquoted PostgreSQL identifiers only, short enough for ``_issuer_myh`` (63 bytes at most).
DATABASE_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,50}")
#: Databases to connect to for ``CREATE DATABASE`` when the prefix itself is no database.
MAINTENANCE_DATABASES = ("postgres", "template1")
#: The services with a database; the development eID keeps its codes in an SQLite file.
DATABASE_SERVICES = ("issuer-af", "issuer-myh", "verifier", "wallet")
#: A MYH qualification of the sample catalogue at EQF level 5 (journey B asks for >= 5).
SAMPLE_QUALIFICATIONS = {
    "software": "3f0c8b2e-6d1a-4c57-9e2b-8a4d7c1e5f90",
    "accounting": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
}


class EmbeddedError(RuntimeError):
    """``intyg up`` cannot go on; the message is meant for the person at the terminal."""


@dataclass(frozen=True)
class Service:
    """One service process: its uvicorn factory module and how it says it is ready."""

    name: str
    title: str
    module: str
    env_prefix: str
    ready_path: str = "/readyz"


SERVICES: tuple[Service, ...] = (
    # The development eID has no /readyz: its discovery document answers once it is up.
    Service("eid", "Development eID (test only)", "eid.app", "INTYG_EID_",
            "/.well-known/openid-configuration"),
    Service("issuer-af", "Arbetsförmedlingen issuer", "issuer.app", "INTYG_ISSUER_"),
    Service("issuer-myh", "MYH issuer", "issuer.app", "INTYG_ISSUER_"),
    Service("verifier", "Verifier (employers)", "verifier.app", "INTYG_VERIFIER_"),
    Service("wallet", "Wallet", "wallet.app", "INTYG_WALLET_"),
)  # fmt: skip
SERVICES_BY_NAME: Mapping[str, Service] = {service.name: service for service in SERVICES}


@dataclass(frozen=True)
class Layout:
    """Where everything lives: one data folder, one port per service."""

    data_dir: Path
    ports: Mapping[str, int]
    #: ``postgresql://user@host:port/NAME``: databases ``NAME_<service>``; None: SQLite files.
    postgres_url: str | None = None

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

    def database_name(self, name: str) -> str:
        """``issuer-af`` -> ``NAME_issuer_af`` (PostgreSQL only)."""
        return f"{postgres_prefix(self.postgres_url or '')}_{name.replace('-', '_')}"

    def database_url(self, name: str) -> str:
        """Where a service keeps its records: its PostgreSQL database or its SQLite file."""
        if self.postgres_url is None:
            return f"sqlite:///{self.folder(name) / (name.split('-')[0] + '.sqlite3')}"
        url = db.normalise_url(self.postgres_url).set(database=self.database_name(name))
        return url.render_as_string(hide_password=False)

    @property
    def sample_data_stamp(self) -> Path:
        """Sample records are loaded once per set of databases."""
        if self.postgres_url is None:
            return self.data_dir / SAMPLE_DATA_STAMP
        prefix = postgres_prefix(self.postgres_url)
        return self.data_dir / f"sample-data.postgres-{prefix}.loaded"

    def folder(self, name: str) -> Path:
        return self.data_dir / name

    @property
    def trust_dir(self) -> Path:
        return self.data_dir / "trust"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"


# -- PostgreSQL databases -----------------------------------------------------------------------


def postgres_prefix(postgres_url: str) -> str:
    """The database prefix: the path of ``INTYG_UP_POSTGRES_URL`` (``.../intyg`` -> ``intyg``)."""
    try:
        url = db.normalise_url(postgres_url)
    except (ValueError, sa.exc.ArgumentError):
        url = None
    if url is None or url.get_backend_name() != "postgresql":
        raise EmbeddedError(f"{POSTGRES_URL_VARIABLE} must be a postgresql:// URL")
    prefix = url.database or ""
    if not DATABASE_PREFIX.fullmatch(prefix):
        raise EmbeddedError(
            f"{POSTGRES_URL_VARIABLE} must end with a database name prefix such as /intyg "
            "(lower-case letters, digits and _)"
        )
    return prefix


def _maintenance_connection(postgres_url: str) -> sa.Connection:
    """An autocommit connection to the server: the named database, else ``postgres``."""
    url = db.normalise_url(postgres_url)
    failure: BaseException | None = None
    for database in (url.database, *MAINTENANCE_DATABASES):
        engine = sa.create_engine(
            url.set(database=database), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )
        try:
            return engine.connect()
        except sa.exc.OperationalError as exc:
            failure = exc.orig
    raise EmbeddedError(f"cannot reach the PostgreSQL server of {POSTGRES_URL_VARIABLE}: {failure}")


def ensure_databases(layout: Layout) -> list[str]:
    """Create the services' databases that do not exist yet; -> the names created."""
    if layout.postgres_url is None:
        return []
    postgres_prefix(layout.postgres_url)  # a bad URL is refused before any connection
    created = []
    with _maintenance_connection(layout.postgres_url) as connection:
        for name in DATABASE_SERVICES:
            database = layout.database_name(name)
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ).first()
            if exists is not None:
                continue
            try:  # the name matched DATABASE_PREFIX: a plain identifier, nothing to escape
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
            except sa.exc.SQLAlchemyError as exc:
                raise EmbeddedError(f"cannot create the database {database}: {exc.orig}") from None
            created.append(database)
    return created


# -- files written once ----------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` owner-only before the secret is written (never world-readable)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _once(path: Path, make: Callable[[], str]) -> str:
    """The file's content, created with ``make()`` on first start (mode 0600)."""
    if not path.exists():
        _write_private(path, make())
    return path.read_text(encoding="utf-8").strip()


def _write_if_changed(path: Path, text: str) -> bool:
    """Public files (certificates, registry): rewritten only when their content changes."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _token() -> str:
    return secrets.token_urlsafe(32)


def new_dev_secrets() -> dict[str, Any]:
    """Fresh development secrets (the content of ``dev-secrets.json``, read by ``intyg demo``)."""
    return {
        "eid_clients": {name: _token() for name in ("issuer-af", "issuer-myh", "wallet")},
        "backoffice": {
            "client_id": "dev-backoffice",
            "issuer-af": _token(),
            "issuer-myh": _token(),
        },
        "employer_api": {"client_id": "dev-employer", "secret": _token()},
        "employer_page": {"username": "dev-user", "password": _token()},
    }


def ensure_files(layout: Layout) -> dict[str, Any]:
    """Folders, master keys, the eID signing key and ``dev-secrets.json``; -> the secrets."""
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    for folder in (*(layout.folder(s.name) for s in SERVICES), layout.trust_dir, layout.logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        if service.name != "eid":  # the eID keeps nothing sealed
            _once(layout.folder(service.name) / "master.key", lambda: generate_master_key() + "\n")
    _once(
        layout.folder("eid") / "signing-key.jwk",
        lambda: json.dumps(jose.generate_key("ES256").private_jwk()) + "\n",
    )
    made = new_dev_secrets()
    path = layout.data_dir / SECRETS_FILE
    secrets_ = json.loads(_once(path, lambda: json.dumps(made, indent=2)))
    if "employer_page" not in secrets_:  # a data folder from before the employer page login
        secrets_["employer_page"] = made["employer_page"]
        _write_private(path, json.dumps(secrets_, indent=2))
    return dict(secrets_)


# -- environment per service ------------------------------------------------------------------


def _eid_config(layout: Layout, secrets_: Mapping[str, Any], client: str) -> str:
    return json.dumps(
        {
            "discovery_url": layout.url("eid") + "/.well-known/openid-configuration",
            "client_id": client,
            "client_secret": secrets_["eid_clients"][client],
            "redirect_uri": layout.url(client) + "/login/callback",
        }
    )


def eid_clients(layout: Layout, secrets_: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The development eID's registered clients, with their exact redirect URIs."""
    return [
        {
            "client_id": client,
            "client_secret": secret,
            "redirect_uris": [layout.url(client) + "/login/callback"]
            + ([layout.url(client) + "/authorize/callback"] if client != "wallet" else []),
        }
        for client, secret in secrets_["eid_clients"].items()
    ]


def _common(layout: Layout, service: Service) -> dict[str, str]:
    p = service.env_prefix
    env = {
        f"{p}ENVIRONMENT": "development",
        f"{p}PUBLIC_BASE_URL": layout.url(service.name),
        f"{p}DATA_DIR": str(layout.folder(service.name)),
    }
    if service.name != "eid":
        env[f"{p}MASTER_KEY_FILE"] = str(layout.folder(service.name) / "master.key")
    if service.name in DATABASE_SERVICES and layout.postgres_url is not None:
        env[f"{p}DATABASE_URL"] = layout.database_url(service.name)
    return env


def local_wallet(layout: Layout) -> str:
    """``WALLETS`` of the issuers and the verifier: this wallet, whose same-device endpoints
    are ``/offer`` and ``/authorize`` (docs/wallet.md), as an "Open in" button."""
    wallet = layout.url("wallet")
    return json.dumps(
        [
            {
                "name": {"sv": "intyg-plånboken", "en": "the intyg wallet"},
                "credential_offer_endpoint": f"{wallet}/offer",
                "authorization_endpoint": f"{wallet}/authorize",
            }
        ]
    )


def service_environment(
    layout: Layout, service: Service, secrets_: Mapping[str, Any]
) -> dict[str, str]:
    """The ``INTYG_<SERVICE>_*`` variables of one service (docs/running.md lists them)."""
    env = _common(layout, service)
    p = service.env_prefix
    if service.name == "eid":
        env[f"{p}CLIENTS"] = json.dumps(eid_clients(layout, secrets_))
        env[f"{p}STORE_PATH"] = str(layout.folder("eid") / "eid.sqlite3")
        env[f"{p}SIGNING_KEY_JWK"] = (layout.folder("eid") / "signing-key.jwk").read_text().strip()
    elif service.name.startswith("issuer-"):
        env[f"{p}AGENCY"] = service.name.removeprefix("issuer-")
        env[f"{p}EID"] = _eid_config(layout, secrets_, service.name)
        wallet_ca = layout.folder("wallet") / "wallet-provider-ca.pem"
        env[f"{p}TRUSTED_WALLET_PROVIDERS"] = json.dumps([str(wallet_ca)])
        env[f"{p}DEV_SAMPLE_DATA"] = "true"
        env[f"{p}DEV_BACKOFFICE_SECRET"] = secrets_["backoffice"][service.name]
        env[f"{p}WALLETS"] = local_wallet(layout)
    elif service.name == "verifier":
        env[f"{p}DEV_TRUST_ANCHOR_DIR"] = str(layout.trust_dir)
        env[f"{p}DEV_API_CLIENT_SECRET"] = secrets_["employer_api"]["secret"]
        env[f"{p}DEV_PAGE_USER_PASSWORD"] = secrets_["employer_page"]["password"]
        env[f"{p}WALLETS"] = local_wallet(layout)
    elif service.name == "wallet":
        env[f"{p}EID"] = _eid_config(layout, secrets_, "wallet")
        env[f"{p}ISSUER_TRUST_ANCHORS"] = json.dumps(
            [str(layout.trust_dir / f"{agency}-dev-ca.pem") for agency in ("af", "myh")]
        )
        env[f"{p}VERIFIER_TRUST_ANCHORS"] = json.dumps(
            [str(layout.trust_dir / "verifier-dev-ca.pem")]
        )
        env[f"{p}VERIFIER_REGISTRY_FILE"] = str(layout.folder("wallet") / "verifier-registry.json")
        # "Hämta intyg": wallet-initiated issuance from both issuers (docs/wallet.md).
        env[f"{p}CREDENTIAL_ISSUERS"] = json.dumps(
            [layout.url(f"issuer-{agency}") for agency in ("af", "myh")]
        )
    return env


# -- ports --------------------------------------------------------------------------------------


def check_ports(layout: Layout) -> None:
    """Every port free before anything starts, or one clear message naming the way out."""
    problems = []
    for service in SERVICES:
        port = layout.ports[service.name]
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # uvicorn binds with SO_REUSEADDR: a port in TIME_WAIT is free for it, and for us.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            option, variable = PORT_OPTIONS[service.name]
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc})"
            problems.append(
                f"port {port} for the {service.title} {reason}; "
                f"choose another with `intyg up {option} PORT` or {variable}=PORT"
            )
        finally:
            probe.close()
    if problems:
        raise EmbeddedError("\n".join(problems))


# -- processes --------------------------------------------------------------------------------


@dataclass
class Child:
    service: Service
    process: subprocess.Popen[bytes]
    log: IO[bytes]


@dataclass
class Supervisor:
    """The child processes, stopped together whatever happens."""

    layout: Layout
    echo: Callable[[str], None]
    stop_requested: threading.Event = field(default_factory=threading.Event)
    children: list[Child] = field(default_factory=list)

    def start(self, service: Service, env: Mapping[str, str]) -> Child:
        log = self.layout.log_file(service.name).open("ab")
        command = [
            sys.executable, "-m", "uvicorn", f"{service.module}:create_app_from_env",
            "--factory", "--host", HOST, "--port", str(self.layout.ports[service.name]),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            cwd=self.layout.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own session: a terminal Ctrl-C reaches only us, and we stop children in order.
            start_new_session=True,
        )
        child = Child(service, process, log)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child, timeout: float = START_TIMEOUT_SECONDS) -> float:
        """Poll the readiness URL; -> seconds taken. A dead child or a timeout is an error."""
        url = self.layout.url(child.service.name) + child.service.ready_path
        started = time.monotonic()
        with httpx.Client(timeout=2.0) as client:
            while not self.stop_requested.is_set():
                if child.process.poll() is not None:
                    raise EmbeddedError(self.crash_report(child))
                try:
                    if client.get(url).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                if time.monotonic() - started > timeout:
                    raise EmbeddedError(
                        f"the {child.service.title} did not become ready within {timeout:.0f} s"
                        f"\n{self.tail(child)}"
                    )
                self.stop_requested.wait(0.2)
        raise EmbeddedError("stopped while starting")

    def tail(self, child: Child) -> str:
        path = self.layout.log_file(child.service.name)
        child.log.flush()
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return f"last lines of {path}:\n" + "\n".join("  | " + line for line in lines)

    def crash_report(self, child: Child) -> str:
        code = child.process.returncode
        return f"the {child.service.title} stopped (exit code {code})\n{self.tail(child)}"

    def crashed(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop_all(self) -> None:
        """SIGINT to every child (uvicorn's graceful stop), SIGKILL after the timeout."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in reversed(self.children):
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"  {child.service.title} did not stop in time: killing it")
                try:
                    os.killpg(child.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.process.wait()
            child.log.close()
        self.children.clear()


# -- wiring after start -----------------------------------------------------------------------


#: The columns of the services' ``signing_keys`` tables that the wiring reads.
SIGNING_KEYS = sa.table(
    "signing_keys",
    sa.column("certificate_chain_pem", sa.Text),
    sa.column("purpose", sa.String),
    sa.column("active", sa.Boolean),
)


def _read_pem(database_url: str, purpose: str, active_only: bool = False) -> str | None:
    """A public certificate chain from a service's database (SQLite opened read-only)."""
    url = db.normalise_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not Path(url.database or "").exists():
            return None
        url = url.set(database=f"file:{url.database}?mode=ro", query={"uri": "true"})
    query = sa.select(SIGNING_KEYS.c.certificate_chain_pem).where(SIGNING_KEYS.c.purpose == purpose)
    if active_only:
        query = query.where(SIGNING_KEYS.c.active.is_(True))
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            pem = connection.execute(query).scalar()
    finally:
        engine.dispose()
    return None if pem is None else str(pem)


def _fetch_pem(client: httpx.Client, url: str) -> str | None:
    try:
        response = client.get(url)
    except httpx.HTTPError:
        return None
    text = response.text
    return text if response.status_code == 200 and "BEGIN CERTIFICATE" in text else None


def issuer_dev_ca(client: httpx.Client, base_url: str, database_url: str, title: str) -> str:
    """An issuer's development CA: ``GET /dev/trust-anchor.pem`` when the issuer serves it,
    else from its database (the certificate is public; the private key stays sealed)."""
    pem = _fetch_pem(client, base_url + "/dev/trust-anchor.pem")
    if pem is None:
        pem = _read_pem(database_url, "dev_ca")
    if pem is None:
        raise EmbeddedError(f"the {title} has no development CA")
    return pem


def verifier_match_keys(database_url: str) -> list[str]:
    """How the wallet recognises the verifier: its client id and its certificate subject
    (the subject survives a renewed certificate, the ``x509_hash`` does not)."""
    pem = _read_pem(database_url, "verifier", active_only=True)
    if pem is None:
        raise EmbeddedError("the verifier has no active request-signing certificate")
    leaf = x509.certs_from_pem(pem.encode())[0]
    return [oid4vp.client_id_x509_hash(leaf), f"subject:{leaf.subject.rfc4514_string()}"]


def verifier_registry(match: list[str]) -> dict[str, Any]:
    """The wallet's registry entry for the development employer (verifier/employers.py)."""
    return {
        "verifiers": [
            {
                "match": match,
                "name": {"sv": "Utvecklingsarbetsgivaren AB", "en": "Utvecklingsarbetsgivaren AB"},
                "organisation_number": "556000-0001",
                "needs": [
                    {
                        "vct": REGISTRATION_CERTIFICATE_VCT,
                        "claims": [["registered"], ["registered_since"],
                                   ["registration_category"]],
                    },
                    {
                        "vct": QUALIFICATION_ATTESTATION_VCT,
                        "claims": [["title"], ["eqf_level"], ["awarding_body"]],
                    },
                ],
            }
        ]
    }  # fmt: skip


# -- sample records of the eID test persons -----------------------------------------------------

#: eid/persons.py people, so that logging in with the development eID finds records.
SAMPLE_REGISTRATIONS = (
    ("198112189884", "Anna", "Andersson", "2025-09-01"),
    ("198503152376", "Erik", "Johansson", "2026-01-12"),
    ("196606011358", "Björn", "Åberg", "2025-11-03"),
)
SAMPLE_AWARDS = (
    ("198112189884", "Anna", "Andersson", SAMPLE_QUALIFICATIONS["software"], "2025-06-13"),
    ("199207045684", "Fatima", "Ali", SAMPLE_QUALIFICATIONS["accounting"], "2025-06-13"),
)


def backoffice_token(client: httpx.Client, base: str, secret: str) -> str:
    response = client.post(
        base + "/backoffice/v1/token",
        data={"grant_type": "client_credentials"},
        auth=("dev-backoffice", secret),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def wire_issuers(
    client: httpx.Client, trust_dir: Path, issuers: Mapping[str, tuple[str, str]]
) -> None:
    """``trust_dir/<agency>-dev-ca.pem`` for each ``name -> (base URL, database URL)``."""
    for name, (base_url, database_url) in issuers.items():
        title = SERVICES_BY_NAME[name].title
        pem = issuer_dev_ca(client, base_url, database_url, title)
        _write_if_changed(trust_dir / f"{name.removeprefix('issuer-')}-dev-ca.pem", pem)


def wire_verifier(
    client: httpx.Client, trust_dir: Path, registry_file: Path, base_url: str, database_url: str
) -> None:
    """``trust_dir/verifier-dev-ca.pem`` and the wallet's registry naming the dev employer."""
    pem = _fetch_pem(client, base_url + "/dev/trust-anchor.pem")
    if pem is None:
        raise EmbeddedError("the verifier does not serve /dev/trust-anchor.pem")
    _write_if_changed(trust_dir / "verifier-dev-ca.pem", pem)
    registry = verifier_registry(verifier_match_keys(database_url))
    _write_if_changed(registry_file, json.dumps(registry, indent=2) + "\n")


def load_sample_records(
    stamp: Path, issuer_af: tuple[str, str], issuer_myh: tuple[str, str]
) -> bool:
    """Once per ``stamp``: registrations (AF) and awards (MYH) for eID test persons, through
    the back-office API; each issuer is ``(base URL, dev-backoffice client secret)``."""
    if stamp.exists():
        return False
    with httpx.Client(timeout=10.0) as client:
        af, secret = issuer_af
        token = backoffice_token(client, af, secret)
        for number, given, family, since in SAMPLE_REGISTRATIONS:
            body = {
                "personal_identity_number": number, "given_name": given, "family_name": family,
                "registered": True, "registered_since": since,
                "registration_category": {"code": "11", "label": "Öppet arbetslös"},
                "office": "Arbetsförmedlingen Exempelstad",
            }  # fmt: skip
            response = client.put(
                af + "/backoffice/v1/registrations", json=body, headers=_bearer(token)
            )
            _check(response, "an AF sample registration")
        myh, secret = issuer_myh
        token = backoffice_token(client, myh, secret)
        for number, given, family, qualification, awarded in SAMPLE_AWARDS:
            body = {
                "personal_identity_number": number, "given_name": given, "family_name": family,
                "qualification_id": qualification, "awarded_on": awarded,
            }  # fmt: skip
            response = client.post(myh + "/backoffice/v1/awards", json=body, headers=_bearer(token))
            _check(response, "a MYH sample award")
    stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"), encoding="utf-8")
    return True


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        raise EmbeddedError(f"loading {what} failed: HTTP {response.status_code} {response.text}")


# -- the container deployment (docker-compose.yml, docs/deployment.md) -----------------------------

#: The development wiring of docker-compose.yml shares this folder between its one-shot
#: ``dev-setup`` steps and the services (a volume).
CONTAINER_TRUST_DIR = Path("/var/lib/intyg/trust")


def container_secrets(database_host: str = "127.0.0.1:5432") -> dict[str, str]:
    """Fresh Docker secrets for docker-compose.yml: file name -> content.

    One PostgreSQL role and database per service (``intyg_issuer_af`` ...; the passwords are
    URL-safe, deploy/postgres/init-databases.sh reads them from the same URLs), a master key
    per service, the eID client configurations of the relying parties and the development
    eID's side of them, the development back-office / employer secrets, and
    ``dev-secrets.json`` with the same values for ``intyg demo --data-dir``.
    """
    layout = Layout(Path("/var/lib/intyg"), DEFAULT_PORTS)
    made = new_dev_secrets()
    files = {
        "postgres-password": _token(),
        "eid-clients": json.dumps(eid_clients(layout, made), indent=2),
        "eid-signing-key": json.dumps(jose.generate_key("ES256").private_jwk()),
        SECRETS_FILE: json.dumps(made, indent=2),
        "verifier-api-client-secret": made["employer_api"]["secret"],
        "verifier-page-user-password": made["employer_page"]["password"],
    }
    for name in DATABASE_SERVICES:
        role = f"intyg_{name.replace('-', '_')}"
        files[f"{name}-database-url"] = f"postgresql://{role}:{_token()}@{database_host}/{role}"
        files[f"{name}-master-key"] = generate_master_key()
    for name in ("issuer-af", "issuer-myh", "wallet"):
        files[f"{name}-eid"] = _eid_config(layout, made, name)
    for name in ("issuer-af", "issuer-myh"):
        files[f"{name}-backoffice-secret"] = made["backoffice"][name]
    return {name: text + "\n" for name, text in sorted(files.items())}


class DevSetupSettings(SecretFileSettings):
    """``intyg dev-setup`` (``INTYG_SETUP_*``): where the services answer and keep their
    records, and the development back-office secrets (``*_FILE`` for every secret)."""

    model_config = SettingsConfigDict(env_prefix="INTYG_SETUP_")

    af_url: str = "http://127.0.0.1:8401"
    myh_url: str = "http://127.0.0.1:8402"
    verifier_url: str = "http://127.0.0.1:8404"
    af_database_url: SecretStr | None = None
    myh_database_url: SecretStr | None = None
    verifier_database_url: SecretStr | None = None
    af_backoffice_secret: SecretStr | None = None
    myh_backoffice_secret: SecretStr | None = None
    #: Development CAs, the wallet's verifier registry and the sample-records stamp.
    trust_dir: Path = CONTAINER_TRUST_DIR

    def required(self, name: str) -> str:
        value = getattr(self, name)
        if value is None:
            raise EmbeddedError(f"INTYG_SETUP_{name.upper()} (or _FILE) is not set")
        return str(value.get_secret_value())


def dev_setup(step: str, settings: DevSetupSettings, echo: Callable[[str], None]) -> None:
    """The development wiring of docker-compose.yml, in two one-shot steps (what ``intyg up``
    does between starting services):

    - ``issuers`` (after both issuers are ready, before the verifier starts): their
      development CAs into ``trust_dir``; the eID test persons' sample records, once.
    - ``verifier`` (after the verifier is ready, before the wallet starts): its development CA
      and the wallet's verifier registry (``trust_dir/verifier-registry.json``).
    """
    trust = settings.trust_dir
    with httpx.Client(timeout=10.0) as client:
        if step == "issuers":
            issuers = {
                "issuer-af": (settings.af_url, settings.required("af_database_url")),
                "issuer-myh": (settings.myh_url, settings.required("myh_database_url")),
            }
            wire_issuers(client, trust, issuers)
            echo(f"issuer development CAs written to {trust}")
            af = (settings.af_url, settings.required("af_backoffice_secret"))
            myh = (settings.myh_url, settings.required("myh_backoffice_secret"))
            if load_sample_records(trust / SAMPLE_DATA_STAMP, af, myh):
                echo("sample records of the test persons loaded")
        elif step == "verifier":
            database_url = settings.required("verifier_database_url")
            registry = trust / "verifier-registry.json"
            wire_verifier(client, trust, registry, settings.verifier_url, database_url)
            echo(f"verifier development CA and wallet registry written to {trust}")
        else:
            raise EmbeddedError(f"unknown dev-setup step {step!r}: issuers or verifier")


# -- the whole run ------------------------------------------------------------------------------


def _start(
    supervisor: Supervisor, layout: Layout, secrets_: Mapping[str, Any], *names: str
) -> None:
    """Start ``names`` together (they do not depend on each other), then wait for each."""
    children = []
    for name in names:
        service = SERVICES_BY_NAME[name]
        supervisor.echo(f"  {service.title:<30} {layout.url(name):<24} starting ...")
        children.append(supervisor.start(service, service_environment(layout, service, secrets_)))
    for child in children:
        seconds = supervisor.wait_ready(child)
        title, url = child.service.title, layout.url(child.service.name)
        supervisor.echo(f"  {title:<30} {url:<24} ready ({seconds:.1f} s)")


def start_all(supervisor: Supervisor, layout: Layout, secrets_: Mapping[str, Any]) -> None:
    """Start in dependency order and wire each service to the ones before it."""
    _start(supervisor, layout, secrets_, "eid")
    _start(supervisor, layout, secrets_, "issuer-af", "issuer-myh")

    def where(name: str) -> tuple[str, str]:
        return layout.url(name), layout.database_url(name)

    with httpx.Client(timeout=5.0) as client:
        wire_issuers(client, layout.trust_dir, {n: where(n) for n in ("issuer-af", "issuer-myh")})
        _start(supervisor, layout, secrets_, "verifier")
        registry_file = layout.folder("wallet") / "verifier-registry.json"
        wire_verifier(client, layout.trust_dir, registry_file, *where("verifier"))
    _start(supervisor, layout, secrets_, "wallet")
    backoffice = secrets_["backoffice"]
    af = (layout.url("issuer-af"), backoffice["issuer-af"])
    myh = (layout.url("issuer-myh"), backoffice["issuer-myh"])
    if load_sample_records(layout.sample_data_stamp, af, myh):
        supervisor.echo("  sample records of the test persons loaded (first start)")


def _install_signal_handlers(event: threading.Event) -> Callable[[], None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: event.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def run(
    layout: Layout,
    echo: Callable[[str], None],
    summary: Callable[[Layout, Mapping[str, Any]], Iterable[str]],
) -> int:
    """Start everything, print the summary, supervise until Ctrl-C/SIGTERM or a crash.

    -> the exit code: 0 after a requested stop, 1 when something failed.
    """
    check_ports(layout)
    for database in ensure_databases(layout):
        echo(f"  PostgreSQL database {database} created")
    secrets_ = ensure_files(layout)
    supervisor = Supervisor(layout, echo)
    restore = _install_signal_handlers(supervisor.stop_requested)
    code = 0
    try:
        echo(f"Starting intyg (data in {layout.data_dir}, logs in {layout.logs_dir}) ...")
        start_all(supervisor, layout, secrets_)
        for line in summary(layout, secrets_):
            echo(line)
        while not supervisor.stop_requested.wait(0.5):
            crashed = supervisor.crashed()
            if crashed is not None:
                echo(supervisor.crash_report(crashed))
                echo("Stopping everything.")
                code = 1
                break
    except (EmbeddedError, httpx.HTTPError, sa.exc.SQLAlchemyError, OSError) as exc:
        if not supervisor.stop_requested.is_set():
            echo(f"intyg up failed: {exc}")
            code = 1
    finally:
        if code == 0:
            echo("Stopping intyg ...")
        supervisor.stop_all()
        restore()
    if code == 0:
        echo("Stopped. Your data stays in " + str(layout.data_dir) + "; `intyg up` continues.")
    return code
