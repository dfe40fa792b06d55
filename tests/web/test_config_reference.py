"""docs/configuration.md lists every setting of every service and stays true
(intyg.web.config_reference, ``intyg config-reference``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from typer.testing import CliRunner

from intyg import cli
from intyg.web import config_reference as reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def settings_classes() -> list[type[BaseSettings]]:
    classes = []
    for spec, *_ in cli.CONFIG_SECTIONS:
        module, _, name = spec.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


def test_the_document_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == cli.configuration_reference(), (
        "docs/configuration.md is stale: run `intyg config-reference --write`"
    )


@pytest.mark.parametrize("settings", settings_classes(), ids=lambda c: c.__name__)
def test_every_setting_is_in_the_document(settings: type[BaseSettings]) -> None:
    text = DOC.read_text(encoding="utf-8")
    for variable in reference.variables(settings).values():
        assert f"| `{variable}`" in text, f"{variable} is missing from docs/configuration.md"


def test_every_service_is_covered() -> None:
    names = {cls.__name__ for cls in settings_classes()}
    assert {"IssuerSettings", "WalletSettings", "VerifierSettings", "EidSettings"} <= names
    assert "OperationsSettings" in names


def test_command_line_variables_are_listed() -> None:
    text = DOC.read_text(encoding="utf-8")
    for variable in ("INTYG_DATA_DIR", "INTYG_UP_EID_PORT", "INTYG_UP_VERIFIER_PORT"):
        assert f"| `{variable}` | `intyg " in text


def test_cli_check_passes_on_the_committed_document() -> None:
    result = CliRunner().invoke(cli.app, ["config-reference", "--check"])
    assert result.exit_code == 0, result.output


# -- the generator ------------------------------------------------------------------------------


class Example(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTYG_EXAMPLE_")

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        return ("token",)

    #: How many, at most.
    limit: int = Field(default=5, ge=1, le=10)
    #: Which mode;
    #: two lines.
    mode: Literal["a", "b"] = "a"
    #: A secret.
    token: SecretStr | None = None
    #: Some files.
    files: tuple[Path, ...] = (Path("x.pem"),)
    #: On or off | with a pipe.
    flag: bool = False


class Undocumented(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTYG_BAD_")

    #: Documented.
    fine: int = 1
    silent: int = 2


def test_rows_name_variable_type_default_and_meaning() -> None:
    text = reference.render([reference.Section("Example", Example, "Intro.")])
    assert "## Example\n\nIntro.\n" in text
    assert "| `INTYG_EXAMPLE_LIMIT` | integer (≥ 1, ≤ 10) | `5` | How many, at most. |" in text
    assert "| `INTYG_EXAMPLE_MODE` | one of `a`, `b` | `a` | Which mode; two lines. |" in text
    assert "| `INTYG_EXAMPLE_TOKEN` or `INTYG_EXAMPLE_TOKEN_FILE` | secret | unset |" in text
    assert '| JSON list of paths | `["x.pem"]` |' in text
    assert "| boolean | `false` | On or off \\| with a pipe. |" in text


def test_a_setting_without_a_comment_is_refused() -> None:
    with pytest.raises(reference.UndocumentedSetting, match="Undocumented.silent"):
        reference.render([reference.Section("Bad", Undocumented)])


def test_unused_inherited_settings_are_marked() -> None:
    section = reference.Section("Example", Example, unused=frozenset({"flag"}))
    assert "| (not used by this service) On or off" in reference.render([section])
