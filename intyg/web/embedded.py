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
back-office and employer API clients; read by ``intyg demo``) and the sample records of the
eID test persons (through the issuers' back-office API). Later starts reuse all of it.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from intyg import jose, oid4vp, x509
from intyg.schemas import QUALIFICATION_ATTESTATION_VCT, REGISTRATION_CERTIFICATE_VCT
from intyg.web.crypto_store import generate_master_key

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

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

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
    made = {
        "eid_clients": {name: _token() for name in ("issuer-af", "issuer-myh", "wallet")},
        "backoffice": {
            "client_id": "dev-backoffice",
            "issuer-af": _token(),
            "issuer-myh": _token(),
        },
        "employer_api": {"client_id": "dev-employer", "secret": _token()},
    }
    return json.loads(_once(layout.data_dir / SECRETS_FILE, lambda: json.dumps(made, indent=2)))


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


def _common(layout: Layout, service: Service) -> dict[str, str]:
    p = service.env_prefix
    env = {
        f"{p}ENVIRONMENT": "development",
        f"{p}PUBLIC_BASE_URL": layout.url(service.name),
        f"{p}DATA_DIR": str(layout.folder(service.name)),
    }
    if service.name != "eid":
        env[f"{p}MASTER_KEY_FILE"] = str(layout.folder(service.name) / "master.key")
    return env


def service_environment(
    layout: Layout, service: Service, secrets_: Mapping[str, Any]
) -> dict[str, str]:
    """The ``INTYG_<SERVICE>_*`` variables of one service (docs/running.md lists them)."""
    env = _common(layout, service)
    p = service.env_prefix
    if service.name == "eid":
        clients = [
            {
                "client_id": client,
                "client_secret": secret,
                "redirect_uris": [layout.url(client) + "/login/callback"]
                + ([layout.url(client) + "/authorize/callback"] if client != "wallet" else []),
            }
            for client, secret in secrets_["eid_clients"].items()
        ]
        env[f"{p}CLIENTS"] = json.dumps(clients)
        env[f"{p}STORE_PATH"] = str(layout.folder("eid") / "eid.sqlite3")
        env[f"{p}SIGNING_KEY_JWK"] = (layout.folder("eid") / "signing-key.jwk").read_text().strip()
    elif service.name.startswith("issuer-"):
        env[f"{p}AGENCY"] = service.name.removeprefix("issuer-")
        env[f"{p}EID"] = _eid_config(layout, secrets_, service.name)
        wallet_ca = layout.folder("wallet") / "wallet-provider-ca.pem"
        env[f"{p}TRUSTED_WALLET_PROVIDERS"] = json.dumps([str(wallet_ca)])
        env[f"{p}DEV_SAMPLE_DATA"] = "true"
        env[f"{p}DEV_BACKOFFICE_SECRET"] = secrets_["backoffice"][service.name]
    elif service.name == "verifier":
        env[f"{p}DEV_TRUST_ANCHOR_DIR"] = str(layout.trust_dir)
        env[f"{p}DEV_API_CLIENT_SECRET"] = secrets_["employer_api"]["secret"]
    elif service.name == "wallet":
        env[f"{p}EID"] = _eid_config(layout, secrets_, "wallet")
        env[f"{p}ISSUER_TRUST_ANCHORS"] = json.dumps(
            [str(layout.trust_dir / f"{agency}-dev-ca.pem") for agency in ("af", "myh")]
        )
        env[f"{p}VERIFIER_TRUST_ANCHORS"] = json.dumps(
            [str(layout.trust_dir / "verifier-dev-ca.pem")]
        )
        env[f"{p}VERIFIER_REGISTRY_FILE"] = str(layout.folder("wallet") / "verifier-registry.json")
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


def _read_sqlite_pem(database: Path, where: str) -> str | None:
    """A certificate column from a service's SQLite file, opened read-only."""
    if not database.exists():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = connection.execute(
            f"SELECT certificate_chain_pem FROM signing_keys WHERE {where}"  # noqa: S608 - constant
        ).fetchone()
    finally:
        connection.close()
    return None if row is None else str(row[0])


def _fetch_pem(client: httpx.Client, url: str) -> str | None:
    try:
        response = client.get(url)
    except httpx.HTTPError:
        return None
    text = response.text
    return text if response.status_code == 200 and "BEGIN CERTIFICATE" in text else None


def issuer_dev_ca(layout: Layout, client: httpx.Client, name: str) -> str:
    """An issuer's development CA: ``GET /dev/trust-anchor.pem`` when the issuer serves it,
    else from its database (the certificate is public; the private key stays sealed)."""
    pem = _fetch_pem(client, layout.url(name) + "/dev/trust-anchor.pem")
    if pem is None:
        database = layout.folder(name) / "issuer.sqlite3"
        pem = _read_sqlite_pem(database, "purpose = 'dev_ca'")
    if pem is None:
        raise EmbeddedError(f"the {SERVICES_BY_NAME[name].title} has no development CA")
    return pem


def verifier_match_keys(layout: Layout) -> list[str]:
    """How the wallet recognises the verifier: its client id and its certificate subject
    (the subject survives a renewed certificate, the ``x509_hash`` does not)."""
    database = layout.folder("verifier") / "verifier.sqlite3"
    pem = _read_sqlite_pem(database, "purpose = 'verifier' AND active = 1")
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


def load_sample_records(layout: Layout, secrets_: Mapping[str, Any]) -> bool:
    """Once per data folder: registrations (AF) and awards (MYH) for eID test persons."""
    stamp = layout.data_dir / SAMPLE_DATA_STAMP
    if stamp.exists():
        return False
    with httpx.Client(timeout=10.0) as client:
        af = layout.url("issuer-af")
        token = backoffice_token(client, af, secrets_["backoffice"]["issuer-af"])
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
        myh = layout.url("issuer-myh")
        token = backoffice_token(client, myh, secrets_["backoffice"]["issuer-myh"])
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
    with httpx.Client(timeout=5.0) as client:
        for name in ("issuer-af", "issuer-myh"):
            agency = name.removeprefix("issuer-")
            _write_if_changed(
                layout.trust_dir / f"{agency}-dev-ca.pem", issuer_dev_ca(layout, client, name)
            )
        _start(supervisor, layout, secrets_, "verifier")
        pem = _fetch_pem(client, layout.url("verifier") + "/dev/trust-anchor.pem")
        if pem is None:
            raise EmbeddedError("the verifier does not serve /dev/trust-anchor.pem")
        _write_if_changed(layout.trust_dir / "verifier-dev-ca.pem", pem)
    registry = verifier_registry(verifier_match_keys(layout))
    _write_if_changed(
        layout.folder("wallet") / "verifier-registry.json", json.dumps(registry, indent=2) + "\n"
    )
    _start(supervisor, layout, secrets_, "wallet")
    if load_sample_records(layout, secrets_):
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
    except (EmbeddedError, httpx.HTTPError, sqlite3.Error, OSError) as exc:
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
