"""intyg.schemas' compiled validity check agrees with jsonschema (the fast path a verifier
takes for every presented subject must never accept what jsonschema refuses)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intyg import schemas
from intyg.schemas import CREDENTIAL_TYPES, example_subjects

EXAMPLES = [(name, stem) for name in CREDENTIAL_TYPES for stem in example_subjects(name)]
DATES = st.sampled_from(["2026-01-12", "2026-02-30", "2026-1-12", "12/01/2026", ""])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([5.0, 7.0, 0.5]),
    st.text(max_size=12),
    DATES,
    st.sampled_from(["11", "200306062381", "556677-8899", "X1"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def jsonschema_accepts(name: str, subject: Any, partial: bool) -> bool:
    errors = schemas.resolve_type(name).validator.iter_errors(subject)
    return not [e for e in errors if not (partial and e.validator == "required")]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    """An example subject with a few members replaced, removed or added, at any depth."""
    name, stem = draw(st.sampled_from(EXAMPLES))
    subject = copy.deepcopy(example_subjects(name)[stem])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(subject)))
        if not path:
            continue
        parent = subject
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "registered_since", "programme"]))] = draw(VALUES)
    return name, subject


@pytest.mark.parametrize(("name", "stem"), EXAMPLES)
@pytest.mark.parametrize("partial", [False, True])
def test_examples_take_the_compiled_path(name: str, stem: str, partial: bool) -> None:
    assert schemas._valid(name, example_subjects(name)[stem], partial)


@settings(max_examples=600, deadline=None)
@given(mutated(), st.booleans())
def test_compiled_check_agrees_with_jsonschema(case: tuple[str, Any], partial: bool) -> None:
    name, subject = case
    assert schemas._valid(name, subject, partial) == jsonschema_accepts(name, subject, partial)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(CREDENTIAL_TYPES)), VALUES, st.booleans())
def test_compiled_check_agrees_on_any_json(name: str, subject: Any, partial: bool) -> None:
    assert schemas._valid(name, subject, partial) == jsonschema_accepts(name, subject, partial)


def test_unknown_keywords_leave_jsonschema_alone() -> None:
    with pytest.raises(schemas._NotCompiled):
        schemas._compile({"anyOf": [{"type": "string"}]}, report_required=True)
    with pytest.raises(schemas._NotCompiled):
        schemas._compile({"additionalProperties": {"type": "string"}}, report_required=True)
