"""The `intyg` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from intyg import jose
from intyg.inspect import FAILED, VERIFIED, Report, inspect_token

STDIN = "-"
app = typer.Typer(
    help="intyg: verifiable credentials (OpenID4VCI, OpenID4VP, SD-JWT VC, VCDM 2.0).",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.callback()
def main() -> None:
    """intyg: verifiable credentials for Sweden's skills and lifelong-learning data."""


def _port_option(service: str, help_text: str) -> Any:
    from intyg.web.embedded import DEFAULT_PORTS, PORT_OPTIONS

    option, variable = PORT_OPTIONS[service]
    return typer.Option(
        option, envvar=variable, help=f"{help_text} (default {DEFAULT_PORTS[service]}).",
        min=1, max=65535,
    )  # fmt: skip


@app.command()
def up(
    data_dir: Annotated[
        Path, typer.Option(envvar="INTYG_DATA_DIR", help="Folder for every service's data.")
    ] = Path("data"),
    eid_port: Annotated[int, _port_option("eid", "Development eID port")] = 8400,
    af_port: Annotated[int, _port_option("issuer-af", "Arbetsförmedlingen issuer port")] = 8401,
    myh_port: Annotated[int, _port_option("issuer-myh", "MYH issuer port")] = 8402,
    wallet_port: Annotated[int, _port_option("wallet", "Wallet port")] = 8403,
    verifier_port: Annotated[int, _port_option("verifier", "Verifier port")] = 8404,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            envvar="INTYG_UP_POSTGRES_URL",
            help="postgresql://user@host:port/NAME: keep the records in the databases "
            "NAME_issuer_af, NAME_issuer_myh, NAME_verifier, NAME_wallet (created when "
            "missing) instead of SQLite files.",
        ),
    ] = None,
) -> None:
    """Start the embedded system on loopback: development eID, Arbetsförmedlingen and MYH
    issuers, verifier and wallet (Ctrl-C stops everything; data is kept)."""
    from intyg.web import embedded

    ports = {
        "eid": eid_port, "issuer-af": af_port, "issuer-myh": myh_port,
        "wallet": wallet_port, "verifier": verifier_port,
    }  # fmt: skip
    if len(set(ports.values())) != len(ports):
        typer.echo("intyg up: every service needs its own port", err=True)
        raise typer.Exit(2)
    layout = embedded.Layout(data_dir.resolve(), ports, postgres_url or None)
    try:
        code = embedded.run(layout, lambda line: typer.echo(line), _up_summary)
    except embedded.EmbeddedError as exc:
        typer.echo(f"intyg up: {exc}", err=True)
        code = 1
    raise typer.Exit(code)


#: What the sample records (intyg/web/embedded.py) give each eID test person.
SAMPLE_HOLDINGS = {
    "anna": "AF registration + MYH qualification (journeys A and B)",
    "erik": "AF registration",
    "bjorn": "AF registration",
    "fatima": "MYH qualification",
    "lars-olof": "samordningsnummer",
    "maja": "eID below LoA3: login is refused",
}


def _up_summary(layout: Any, secrets: Any) -> list[str]:
    """What `intyg up` prints once everything answers: URLs, test persons, first steps."""
    from eid.persons import TEST_PERSONS  # data only: the test persons' table
    from intyg.web.embedded import READY_MARKER, SERVICES

    lines = ["", f"{READY_MARKER}:"]
    lines += [f"  {s.title:<30} {layout.url(s.name)}" for s in SERVICES]
    lines += [
        f"  {'Issuer back-office API docs':<30} {layout.url('issuer-af')}/docs",
        "",
        "Test persons (pick one on the development eID page):",
    ]
    for person in TEST_PERSONS:
        digits = person.number.twelve_digits  # invented test numbers, shown on purpose
        has = SAMPLE_HOLDINGS.get(person.id, "no records")
        lines.append(f"  {person.name:<20} {digits[:8]}-{digits[8:]}  {person.eid:<15} {has}")
    lines += [
        "",
        "Try first:",
        f"  1. Open the wallet {layout.url('wallet')}/ and log in as Anna Andersson.",
        f"  2. Open the Arbetsförmedlingen page {layout.url('issuer-af')}/ , log in as Anna,",
        "     and add the registration certificate to the wallet (same-device link or QR).",
        f"  3. Do the same at the MYH page {layout.url('issuer-myh')}/ (her qualification).",
        f"  4. As the employer, log in at {layout.url('verifier')}/ as dev-user (password:",
        "     employer_page in dev-secrets.json), ask for proof, and paste the request link",
        f"     into the wallet at {layout.url('wallet')}/present. Or use the verifier API:",
        f"     curl -u dev-employer:<secret> ... {layout.url('verifier')}/api/v1/transactions",
        "     and open its request_link in the wallet (/authorize?...): consent, then check",
        "     the result with GET /api/v1/transactions/<id>.",
        "  Or let `intyg demo` do journeys A and B for you (in another terminal).",
        "",
        f"Development secrets (back office, employer API/page): {layout.data_dir}/dev-secrets.json",
        f"Logs: {layout.logs_dir}/<service>.log",
        "Press Ctrl-C to stop; `intyg up` again continues with the same data.",
    ]
    return lines


@app.command()
def demo(
    data_dir: Annotated[
        Path, typer.Option(envvar="INTYG_DATA_DIR", help="The data folder of `intyg up`.")
    ] = Path("data"),
    eid_port: Annotated[int, _port_option("eid", "Development eID port")] = 8400,
    af_port: Annotated[int, _port_option("issuer-af", "Arbetsförmedlingen issuer port")] = 8401,
    myh_port: Annotated[int, _port_option("issuer-myh", "MYH issuer port")] = 8402,
    wallet_port: Annotated[int, _port_option("wallet", "Wallet port")] = 8403,
    verifier_port: Annotated[int, _port_option("verifier", "Verifier port")] = 8404,
) -> None:
    """Run journeys A and B against a running `intyg up` (a scripted person and employer)."""
    import httpx

    from intyg.demo import DemoError, Endpoints, load_secrets, run_demo

    def url(port: int) -> str:
        return f"http://127.0.0.1:{port}"

    endpoints = Endpoints(
        url(eid_port), url(af_port), url(myh_port), url(wallet_port), url(verifier_port)
    )
    try:
        run_demo(endpoints, load_secrets(data_dir.resolve()), lambda line: typer.echo(line))
    except DemoError as exc:
        typer.echo(f"intyg demo failed: {exc}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        typer.echo(
            f"intyg demo: cannot reach the services ({exc}); is `intyg up` running?", err=True
        )
        raise typer.Exit(1) from None


@app.command()
def check(
    data_dir: Annotated[
        Path,
        typer.Option(envvar="INTYG_DATA_DIR", help="An `intyg up` data folder (SQLite files)."),
    ] = Path("data"),
    postgres_url: Annotated[
        str | None,
        typer.Option(
            envvar="INTYG_UP_POSTGRES_URL", help="`intyg up` on PostgreSQL: the same URL."
        ),
    ] = None,
    issuer: Annotated[
        list[str] | None,
        typer.Option(help="NAME=DATABASE_URL of an issuer (repeat); replaces the data folder's."),
    ] = None,
    wallet: Annotated[str | None, typer.Option(help="The wallet's database URL.")] = None,
    verifier: Annotated[str | None, typer.Option(help="The verifier's database URL.")] = None,
    wallet_master_key_file: Annotated[
        Path | None, typer.Option(help="The wallet's master key (I5 then opens every key).")
    ] = None,
    tx_code_max_attempts: Annotated[int, typer.Option(min=1)] = 5,
    allow_foreign_presentations: Annotated[
        bool, typer.Option(help="Presentations from other wallets are not I4 violations.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check invariants I1-I5 (security.md §2) over the issuer, wallet and verifier
    databases: counts per invariant; exit code 1 on any violation."""
    from dataclasses import replace

    from intyg.web.invariants import Sources
    from intyg.web.invariants import check as check_invariants

    sources = Sources.from_data_dir(data_dir.resolve(), postgres_url)
    if issuer:
        pairs = [item.partition("=") for item in issuer]
        if any(not name or not url for name, _, url in pairs):
            raise typer.BadParameter("use NAME=DATABASE_URL", param_hint="--issuer")
        sources = replace(sources, issuers={name: url for name, _, url in pairs})
    master = sources.wallet_master_key
    if wallet_master_key_file is not None:
        master = wallet_master_key_file.read_text(encoding="utf-8").strip()
    sources = replace(
        sources,
        wallet=wallet or sources.wallet,
        verifier=verifier or sources.verifier,
        wallet_master_key=master,
    )
    if not (sources.issuers or sources.wallet or sources.verifier):
        typer.echo(f"intyg check: no databases in {data_dir} and none given", err=True)
        raise typer.Exit(2)
    report = check_invariants(
        sources,
        tx_code_max_attempts=tx_code_max_attempts,
        allow_foreign_presentations=allow_foreign_presentations,
    )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.lines():
            typer.echo(line)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def decode(
    token: Annotated[str, typer.Argument(help="The token, or - to read it from standard input.")],
    key: Annotated[
        Path | None, typer.Option("--key", "-k", help="Issuer public JWK file to verify with.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show a JWT, SD-JWT, SD-JWT+KB, vc+jwt or vp+jwt with its disclosures resolved.

    Says what was verified and what was not; exits 1 if any check failed.
    """
    text = sys.stdin.read() if token == STDIN else token
    issuer_key = _load_public_key(key) if key else None
    report = inspect_token(text, issuer_key)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        _print_report(report)
    if any(check.outcome == FAILED for check in _all_checks(report)):
        raise typer.Exit(1)


def _load_public_key(path: Path) -> jose.Key:
    try:
        jwk = json.loads(path.read_text(encoding="utf-8"))
        return jose.key_from_jwk(jwk, allow_private=True).public()
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot use {path} as a key: {exc}", param_hint="--key") from exc


def _all_checks(report: Report) -> list:
    checks = list(report.checks)
    for inner in report.embedded:
        checks.extend(_all_checks(inner))
    return checks


def _print_report(report: Report, indent: str = "") -> None:
    def show(title: str, value: object) -> None:
        body = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + indent + "  ")
        typer.echo(f"{indent}{title}:\n{indent}  {body}")

    typer.echo(f"{indent}{report.kind}")
    if report.header:
        show("header", report.header)
    if report.claims:
        show("claims (disclosures resolved)" if report.disclosures else "claims", report.claims)
    if report.disclosures:
        show("disclosures", report.disclosures)
    if report.key_binding is not None:
        show("key binding JWT", report.key_binding)
    for inner in report.embedded:
        typer.echo(f"{indent}embedded credential:")
        _print_report(inner, indent + "  ")
    typer.echo(f"{indent}checks:")
    marks = {VERIFIED: "ok  ", FAILED: "FAIL"}
    for check in report.checks:
        detail = f" ({check.detail})" if check.detail else ""
        typer.echo(
            f"{indent}  [{marks.get(check.outcome, ' -- ')}] {check.name}: {check.outcome}{detail}"
        )


#: ``intyg serve`` service -> its uvicorn factory (docker-compose.yml, docs/deployment.md).
SERVE_FACTORIES = {
    "eid": "eid.app:create_app_from_env",
    "issuer": "issuer.app:create_app_from_env",
    "verifier": "verifier.app:create_app_from_env",
    "wallet": "wallet.app:create_app_from_env",
}


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="eid, issuer, verifier or wallet.")],
    host: Annotated[
        str, typer.Option(envvar="INTYG_SERVE_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="INTYG_SERVE_PORT", help="Port to listen on.", min=1, max=65535)
    ] = 8000,
    workers: Annotated[
        int, typer.Option(envvar="INTYG_SERVE_WORKERS", help="Worker processes.", min=1)
    ] = 1,
) -> None:
    """Run one service with its settings from the environment (``INTYG_<SERVICE>_*``): the
    container command of the Dockerfile. The service migrates its database on start (one
    replica at a time, under a PostgreSQL advisory lock) before it answers /readyz."""
    import uvicorn

    factory = SERVE_FACTORIES.get(service)
    if factory is None:
        typer.echo(
            f"intyg serve: unknown service {service!r}: {', '.join(SERVE_FACTORIES)}", err=True
        )
        raise typer.Exit(2)
    # SIGTERM (docker stop) and SIGINT stop the server gracefully; the exit code tells.
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, server_header=False)


@app.command("dev-setup")
def dev_setup(
    step: Annotated[str, typer.Argument(help="issuers (before the verifier) or verifier.")],
) -> None:
    """Development wiring of docker-compose.yml's dev profile (settings from
    ``INTYG_SETUP_*``): the issuers' and the verifier's development CAs, the wallet's
    verifier registry and the test persons' sample records, as `intyg up` does."""
    from pydantic import ValidationError

    from intyg.web import embedded

    try:
        embedded.dev_setup(step, embedded.DevSetupSettings(), lambda line: typer.echo(line))
    except (embedded.EmbeddedError, ValidationError, ValueError, OSError) as exc:
        typer.echo(f"intyg dev-setup {step}: {exc}", err=True)
        raise typer.Exit(1) from None


@keys_app.command("new")
def keys_new(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File for the private JWK.")
    ] = None,
    alg: Annotated[str, typer.Option(help="ES256 (default, HAIP) or EdDSA.")] = "ES256",
    kid: Annotated[str | None, typer.Option(help="Key id (default: the thumbprint).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a new private key as a JWK file (mode 0600) and print its public JWK."""
    if alg not in ("ES256", "EdDSA"):
        raise typer.BadParameter("alg must be ES256 or EdDSA", param_hint="--alg")
    key = jose.generate_key(alg, kid=kid)
    path = out or Path(f"{key.kid}.jwk")
    if path.exists() and not force:
        typer.echo(f"{path} exists; use --force to overwrite it.", err=True)
        raise typer.Exit(1)
    _write_private(path, json.dumps(key.private_jwk(), indent=2) + "\n")
    typer.echo(f"Private key written to {path} (keep it secret; mode 0600).", err=True)
    typer.echo(json.dumps(key.public_jwk(), indent=2))


def _write_private(path: Path, text: str) -> None:
    """Create the file with owner-only permissions before any secret is written to it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600)
    os.chmod(path, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


# -- intyg config-reference ---------------------------------------------------------------------

#: Common settings the development eID inherits but never reads (it keeps no sealed data).
_EID_IGNORES = (
    "data_dir",
    "database_url",
    "master_key",
    "previous_master_keys",
    "dev_generate_master_key",
)
CONFIGURATION_DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
#: docs/configuration.md, in order: (settings class, heading, context, fields it ignores).
CONFIG_SECTIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "intyg.web.operations:OperationsSettings",
        "Every service: logs, metrics, API docs (`INTYG_*`)",
        "Process-wide, the same names for every service (docs/running.md, Operations). "
        "`PROMETHEUS_MULTIPROC_DIR` (prometheus-client's own variable) turns on "
        "multi-worker metrics.",
        (),
    ),
    (
        "issuer.settings:IssuerSettings",
        "Issuer (`INTYG_ISSUER_*`)",
        "One instance per agency (docs/issuer.md).",
        (),
    ),
    ("wallet.settings:WalletSettings", "Wallet (`INTYG_WALLET_*`)", "See docs/wallet.md.", ()),
    (
        "verifier.settings:VerifierSettings",
        "Verifier (`INTYG_VERIFIER_*`)",
        "See docs/verifier.md.",
        (),
    ),
    (
        "eid.settings:EidSettings",
        "Development eID (`INTYG_EID_*`)",
        "A test tool; refuses to start unless `INTYG_EID_ENVIRONMENT=development` (docs/eid.md).",
        _EID_IGNORES,
    ),
)
CONFIG_PREAMBLE = """\
# Configuration reference

Every setting of every service, generated from the settings classes and the command line by
`intyg config-reference --write` (tests/web/test_config_reference.py fails when this file is
out of date; do not edit it by hand: change the `#:` comment above the setting instead).

- Each service reads its own prefix (`INTYG_ISSUER_`, `INTYG_WALLET_`, `INTYG_VERIFIER_`,
  `INTYG_EID_`); names are case-insensitive. Lists and objects are JSON
  (`INTYG_ISSUER_TRUSTED_WALLET_PROVIDERS='["/run/ca.pem"]'`); booleans are `true`/`false`.
- A setting that holds a secret may instead name a file: `<VARIABLE>_FILE=/run/secrets/x`
  (both set is an error; structured settings hold the same JSON in the file).
- `environment` is `production` unless set: there, every `dev_*` setting is refused, the
  master key is required and the public base URL must be `https`.
- Times are seconds unless the name says `_days`."""


def configuration_reference() -> str:
    """docs/configuration.md as it should be (intyg.web.config_reference)."""
    import importlib

    import typer.main

    from intyg.web import config_reference as reference

    sections = []
    for spec, title, intro, unused in CONFIG_SECTIONS:
        module, _, name = spec.partition(":")
        settings = getattr(importlib.import_module(module), name)
        sections.append(reference.Section(title, settings, intro, frozenset(unused)))
    options = reference.command_options(typer.main.get_command(app))
    return reference.render(sections, options, preamble=CONFIG_PREAMBLE)


@app.command("config-reference")
def config_reference(
    write: Annotated[
        bool, typer.Option("--write", help="Write docs/configuration.md instead of printing.")
    ] = False,
    check_only: Annotated[
        bool, typer.Option("--check", help="Exit 1 when docs/configuration.md is out of date.")
    ] = False,
) -> None:
    """Print (or write, or check) the configuration reference: every setting of every service
    with its environment variable, type, default and meaning."""
    text = configuration_reference()
    if check_only:
        exists = CONFIGURATION_DOC.exists()
        current = CONFIGURATION_DOC.read_text(encoding="utf-8") if exists else ""
        if current != text:
            typer.echo(f"{CONFIGURATION_DOC} is out of date: run `intyg config-reference --write`")
            raise typer.Exit(1)
        return
    if write:
        CONFIGURATION_DOC.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {CONFIGURATION_DOC}", err=True)
        return
    typer.echo(text, nl=False)
