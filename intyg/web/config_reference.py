"""The configuration reference (docs/configuration.md), generated from the settings classes
and the command line so that it cannot drift: ``intyg config-reference --write``.

Each setting's meaning is the ``#:`` comment right above its field in the source (the
Sphinx autodoc convention); type, default and environment variable come from the pydantic
field. Settings holding a secret may also come from ``<VARIABLE>_FILE``
(:mod:`intyg.web.settings`). A setting without a ``#:`` comment is an error here, so every
new setting arrives documented.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

__all__ = ["CommandOption", "Section", "UndocumentedSetting", "command_options", "render"]


class UndocumentedSetting(ValueError):
    """A setting has no ``#:`` comment to say what it means."""


@dataclass(frozen=True)
class Section:
    """One settings class: a heading, a sentence of context, fields some service ignores."""

    title: str
    settings: type[BaseSettings]
    intro: str = ""
    unused: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class CommandOption:
    """An option of an ``intyg`` command that an environment variable can set."""

    command: str
    option: str
    variable: str
    default: Any
    meaning: str


# -- meanings from the source -----------------------------------------------------------------


def _comments_above(lines: list[str], line_number: int) -> str:
    """The ``#:`` comment lines directly above line ``line_number`` (1-based), joined."""
    found: list[str] = []
    index = line_number - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.append(lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(reversed(found))


def _class_comments(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    (node,) = ast.parse(source).body
    assert isinstance(node, ast.ClassDef)
    return {
        statement.target.id: _comments_above(lines, statement.lineno)
        for statement in node.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
    }


def meanings(settings: type[BaseModel]) -> dict[str, str]:
    """Field name -> its ``#:`` comment, looked up in the class that declares the field."""
    found: dict[str, str] = {}
    for cls in reversed(settings.__mro__):
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            found.update({k: v for k, v in _class_comments(cls).items() if v})
    return found


# -- types and defaults -----------------------------------------------------------------------


#: An object setting with more fields is named by its class (its docs list the fields).
MAX_LISTED_FIELDS = 4
_SCALARS: dict[Any, tuple[str, str]] = {
    bool: ("boolean", "booleans"),
    int: ("integer", "integers"),
    float: ("number", "numbers"),
    str: ("string", "strings"),
    Path: ("path", "paths"),
    SecretStr: ("secret", "secrets"),
}


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [arg for arg in get_args(annotation) if arg is not type(None)]
    return [annotation]


def type_text(annotation: Any, plural: bool = False) -> str:
    """A reader's name for a field type: ``integer``, ``one of a, b``, ``JSON list of paths``."""
    members = _members(annotation)
    if len(members) > 1:
        return " or ".join(type_text(member, plural) for member in members)
    (annotation,) = members
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    if origin is tuple or origin is list:
        return "JSON list of " + type_text(get_args(annotation)[0], plural=True)
    if annotation in _SCALARS:
        return _SCALARS[annotation][plural]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        noun = "objects" if plural else "JSON object"
        names = list(annotation.model_fields)
        fields = ", ".join(names) if len(names) <= MAX_LISTED_FIELDS else annotation.__name__
        return f"{noun} ({fields})"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(info: FieldInfo) -> str:
    words = {
        Ge: ("≥", "ge"),
        Gt: (">", "gt"),
        Le: ("≤", "le"),
        Lt: ("<", "lt"),
        MinLen: ("length ≥", "min_length"),
        MaxLen: ("length ≤", "max_length"),
    }
    parts = []
    for item in info.metadata:
        for kind, (word, attribute) in words.items():
            if isinstance(item, kind):
                parts.append(f"{word} {getattr(item, attribute)}")
    return f" ({', '.join(parts)})" if parts else ""


def default_text(info: FieldInfo) -> str:
    """The default as one would write it in the environment; ``required`` or ``unset``."""
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, tuple | list):
        return f"`{json.dumps([str(v) if isinstance(v, Path) else v for v in value])}`"
    return f"`{value}`"


def command_options(group: Any) -> list[CommandOption]:
    """Options with an environment variable of every command of a click/typer group; an
    option shared by several commands (``--data-dir``) is listed once, naming them all."""
    found: dict[tuple[str, str], list[Any]] = {}
    for name in sorted(group.commands):
        for param in group.commands[name].params:
            variable = getattr(param, "envvar", None)
            if isinstance(variable, str):
                found.setdefault((variable, param.opts[0]), []).append((name, param))
    options = []
    for (variable, option), uses in sorted(found.items()):
        # The fullest help of the commands sharing the option says the most.
        param = max((param for _, param in uses), key=lambda param: len(param.help or ""))
        default = None if param.default is None else str(param.default)
        commands = "/".join(name for name, _ in uses)
        options.append(CommandOption(commands, option, variable, default, param.help or ""))
    return options


# -- rendering --------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _secret_fields(settings: type[BaseSettings]) -> tuple[str, ...]:
    secret_fields = getattr(settings, "secret_fields", None)
    return tuple(secret_fields()) if callable(secret_fields) else ()


def variables(settings: type[BaseSettings]) -> dict[str, str]:
    """Field name -> environment variable."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {name: f"{prefix}{name}".upper() for name in settings.model_fields}


def _section_rows(section: Section) -> Iterator[str]:
    settings = section.settings
    meaning = meanings(settings)
    names = variables(settings)
    secrets = _secret_fields(settings)
    for name, info in settings.model_fields.items():
        text = meaning.get(name)
        if not text:
            raise UndocumentedSetting(f"{settings.__name__}.{name} has no #: comment")
        if name in section.unused:
            text = "(not used by this service) " + text
        variable = f"`{names[name]}`"
        if name in secrets:
            variable += f" or `{names[name]}_FILE`"
        kind = type_text(info.annotation) + _bounds(info)
        yield f"| {variable} | {_cell(kind)} | {_cell(default_text(info))} | {_cell(text)} |"


def _options_rows(options: Iterable[CommandOption]) -> Iterator[str]:
    for option in options:
        default = "unset" if option.default is None else f"`{option.default}`"
        yield (
            f"| `{option.variable}` | `intyg {option.command} {option.option}` | "
            f"{_cell(default)} | {_cell(option.meaning)} |"
        )


def render(
    sections: Sequence[Section],
    options: Sequence[CommandOption] = (),
    *,
    preamble: str = "",
) -> str:
    """The whole Markdown document."""
    out = [preamble.rstrip(), ""] if preamble else []
    for section in sections:
        out += [f"## {section.title}", ""]
        if section.intro:
            out += [section.intro, ""]
        out += ["| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
        out += list(_section_rows(section))
        out.append("")
    if options:
        out += [
            "## Command-line options",
            "",
            "Options of the `intyg` commands that an environment variable can also set.",
            "",
            "| variable | option | default | meaning |",
            "| --- | --- | --- | --- |",
            *_options_rows(options),
            "",
        ]
    return "\n".join(out)
