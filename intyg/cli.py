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
    layout = embedded.Layout(data_dir.resolve(), ports)
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
        "  4. As the employer, create a request with the verifier API (docs/verifier.md):",
        f"     curl -u dev-employer:<secret> ... {layout.url('verifier')}/api/v1/transactions",
        "     and open its request_link in the wallet (/authorize?...): consent, then check",
        "     the result with GET /api/v1/transactions/<id>.",
        "  Or let `intyg demo` do journeys A and B for you (in another terminal).",
        "",
        f"Development secrets (back office, employer API): {layout.data_dir}/dev-secrets.json",
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
