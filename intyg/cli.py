"""The `intyg` command line."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="intyg: verifiable credentials (OpenID4VCI, OpenID4VP, SD-JWT VC, VCDM 2.0).",
    no_args_is_help=True,
)


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
