"""The `intyg` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

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


@app.command()
def up() -> None:
    """Start the embedded system (issuers, wallet, verifier, development eID)."""
    typer.echo(
        "intyg core is installed. The services (issuer, wallet, verifier, eID) are not built yet;\n"
        "what exists today is the command line:\n"
        "  intyg decode TOKEN   show a JWT / SD-JWT / SD-JWT+KB with its disclosures\n"
        "  intyg keys new       write a new signing key (JWK)\n"
        "Run `intyg --help` for details."
    )


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
