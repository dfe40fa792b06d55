"""Tests for intyg.dcql: OpenID4VP 1.0 §6 / §7 examples as vectors, matching, verifier checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intyg import dcql, jose, sdjwt, sdjwt_vc
from intyg.dcql import Candidate, ClaimsPathError, DCQLError, Presented
from intyg.sdjwt import SD

PID_VCT = "https://credentials.example.com/identity_credential"

# -- spec vectors (openid/OpenID4VP, 1.0/examples/query_lang and examples/query_lang) --------

SIMPLE = {
    "credentials": [
        {
            "id": "my_credential",
            "format": "dc+sd-jwt",
            "meta": {"vct_values": [PID_VCT]},
            "claims": [
                {"path": ["family_name"]},
                {"path": ["given_name"]},
                {"path": ["address", "street_address"]},
            ],
        }
    ]
}
CLAIMS_ALTERNATIVES = {
    "credentials": [
        {
            "id": "pid",
            "format": "dc+sd-jwt",
            "meta": {"vct_values": [PID_VCT]},
            "claims": [
                {"id": "a", "path": ["last_name"]},
                {"id": "b", "path": ["postal_code"]},
                {"id": "c", "path": ["locality"]},
                {"id": "d", "path": ["region"]},
                {"id": "e", "path": ["date_of_birth"]},
            ],
            "claim_sets": [["a", "c", "d", "e"], ["a", "b", "e"]],
        }
    ]
}


def _sd(query_id: str, vct: str, *paths: list) -> dict[str, Any]:
    return {
        "id": query_id,
        "format": "dc+sd-jwt",
        "meta": {"vct_values": [vct]},
        "claims": [{"path": p} for p in paths],
    }


CREDENTIALS_ALTERNATIVES = {
    "credentials": [
        _sd("pid", PID_VCT, ["given_name"], ["family_name"], ["address", "street_address"]),
        _sd(
            "other_pid",
            "https://othercredentials.example/pid",
            ["given_name"],
            ["family_name"],
            ["address", "street_address"],
        ),
        _sd(
            "pid_reduced_cred_1",
            "https://credentials.example.com/reduced_identity_credential",
            ["family_name"],
            ["given_name"],
        ),
        _sd(
            "pid_reduced_cred_2",
            "https://cred.example/residence_credential",
            ["postal_code"],
            ["locality"],
            ["region"],
        ),
        _sd("nice_to_have", "https://company.example/company_rewards", ["rewards_number"]),
    ],
    "credential_sets": [
        {"options": [["pid"], ["other_pid"], ["pid_reduced_cred_1", "pid_reduced_cred_2"]]},
        {"required": False, "options": [["nice_to_have"]]},
    ],
}


def _mdoc(query_id: str, doctype: str, *elements: str) -> dict[str, Any]:
    return {
        "id": query_id,
        "format": "mso_mdoc",
        "meta": {"doctype_value": doctype},
        "claims": [{"id": e, "path": ["org.iso.18013.5.1", e]} for e in elements],
    }


COMPLEX_MDOC = {
    "credentials": [
        _mdoc("mdl-id", "org.iso.18013.5.1.mDL", "given_name", "family_name", "portrait"),
        _mdoc("mdl-address", "org.iso.18013.5.1.mDL", "resident_address", "resident_country"),
        _mdoc("photo_card-id", "org.iso.23220.photoid.1", "given_name", "family_name", "portrait"),
        _mdoc(
            "photo_card-address", "org.iso.23220.photoid.1", "resident_address", "resident_country"
        ),
    ],
    "credential_sets": [
        {"options": [["mdl-id"], ["photo_card-id"]]},
        {"required": False, "options": [["mdl-address"], ["photo_card-address"]]},
    ],
}
MULTI_CREDENTIALS = {
    "credentials": [
        _sd("pid", PID_VCT, ["given_name"], ["family_name"], ["address", "street_address"]),
        {
            "id": "mdl",
            "format": "mso_mdoc",
            "meta": {"doctype_value": "org.iso.7367.1.mVRC"},
            "claims": [
                {"path": ["org.iso.7367.1", "vehicle_holder"]},
                {"path": ["org.iso.18013.5.1", "given_name"]},
            ],
        },
    ]
}
VALUE_MATCHING = {
    "credentials": [
        {
            "id": "my_credential",
            "format": "dc+sd-jwt",
            "meta": {"vct_values": [PID_VCT]},
            "claims": [
                {"path": ["family_name"], "values": ["Doe"]},
                {"path": ["given_name"]},
                {"path": ["address", "street_address"]},
                {"path": ["postal_code"], "values": ["90210", "90211"]},
            ],
        }
    ]
}
JWT_VC = {
    "credentials": [
        {
            "id": "example_jwt_vc",
            "format": "jwt_vc_json",
            "meta": {"type_values": [["IDCredential"]]},
            "claims": [
                {"path": ["credentialSubject", "family_name"]},
                {"path": ["credentialSubject", "given_name"]},
            ],
        }
    ]
}
# protocols.md §2.4: journey B (registration certificate + qualification).
JOURNEY_B = {
    "credentials": [
        {
            "id": "inskrivning",
            "format": "dc+sd-jwt",
            "meta": {"vct_values": ["https://intyg.example/vct/af-inskrivningsintyg/1"]},
            "claims": [
                {"id": "since", "path": ["registered_since"]},
                {"id": "cat", "path": ["registration_category", "code"]},
            ],
        },
        {
            "id": "kval",
            "format": "dc+sd-jwt",
            "multiple": True,
            "meta": {"vct_values": ["https://intyg.example/vct/myh-kvalifikation/1"]},
            "claims": [{"path": ["title"]}, {"path": ["eqf_level"], "values": [5, 6]}],
        },
    ],
    "credential_sets": [{"options": [["inskrivning"]]}, {"options": [["kval"]], "required": False}],
}
VECTORS = [
    SIMPLE,
    CLAIMS_ALTERNATIVES,
    CREDENTIALS_ALTERNATIVES,
    COMPLEX_MDOC,
    MULTI_CREDENTIALS,
    VALUE_MATCHING,
    JWT_VC,
    JOURNEY_B,
]

# OpenID4VP §7.3 claims path pointer example.
ARTHUR = {
    "name": "Arthur Dent",
    "address": {
        "street_address": "42 Market Street",
        "locality": "Milliways",
        "postal_code": "12345",
    },
    "degrees": [
        {"type": "Bachelor of Science", "university": "University of Betelgeuse"},
        {"type": "Master of Science", "university": "University of Betelgeuse"},
    ],
    "nationalities": ["British", "Betelgeusian"],
}


@pytest.mark.parametrize("vector", VECTORS)
def test_spec_examples_parse_and_round_trip(vector: dict) -> None:
    query = dcql.parse_query(vector)
    assert query.to_json() == vector
    assert dcql.parse_query(query.to_json()) == query


def test_parse_from_json_text() -> None:
    import json

    assert dcql.parse_query(json.dumps(SIMPLE)) == dcql.parse_query(SIMPLE)


def test_defaults() -> None:
    query = dcql.parse_query(SIMPLE).credentials[0]
    assert query.multiple is False and query.require_cryptographic_holder_binding is True
    assert query.vct_values == (PID_VCT,)


def test_unknown_properties_ignored() -> None:
    vector = copy.deepcopy(SIMPLE)
    vector["future"] = {"x": 1}
    vector["credentials"][0]["future"] = True
    vector["credentials"][0]["meta"]["future"] = 1
    vector["credentials"][0]["claims"][0]["future"] = 1
    assert dcql.parse_query(vector) == dcql.parse_query(SIMPLE)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (["name"], ["Arthur Dent"]),
        (["address"], [ARTHUR["address"]]),
        (["address", "street_address"], ["42 Market Street"]),
        (["degrees", None, "type"], ["Bachelor of Science", "Master of Science"]),
        (["nationalities", 1], ["Betelgeusian"]),
    ],
)
def test_claims_path_spec_examples(path: list, expected: list) -> None:
    assert dcql.select(path, ARTHUR) == expected


def test_select_with_paths_reports_concrete_paths() -> None:
    selected = dcql.select_with_paths(["degrees", None, "type"], ARTHUR)
    assert [p for p, _ in selected] == [("degrees", 0, "type"), ("degrees", 1, "type")]


def test_missing_keys_drop_elements() -> None:
    doc = {"a": [{"b": 1}, {"c": 2}, {"b": 3}]}
    assert dcql.select(["a", None, "b"], doc) == [1, 3]
    assert dcql.select(["a", 5], {"a": [1, 2, 3, 4, 5, 6]}) == [6]


@pytest.mark.parametrize(
    ("path", "doc", "message"),
    [
        (["name", "x"], ARTHUR, "non-object"),
        (["name", None], ARTHUR, "non-array"),
        (["address", 0], ARTHUR, "non-array"),
        (["nope"], ARTHUR, "selects nothing"),
        (["nationalities", 7], ARTHUR, "selects nothing"),
        (["degrees", None, "nope"], ARTHUR, "selects nothing"),
    ],
)
def test_select_aborts(path: list, doc: Any, message: str) -> None:
    with pytest.raises(ClaimsPathError, match=message):
        dcql.select(path, doc)


@pytest.mark.parametrize("path", [[], ["a", -1], ["a", True], ["a", 1.5], ["a", {}], "a", None])
def test_malformed_claims_paths(path: Any) -> None:
    with pytest.raises(DCQLError, match="claims path"):
        dcql.select(path, ARTHUR)


def test_claims_path_too_long() -> None:
    with pytest.raises(DCQLError, match="longer"):
        dcql.check_claims_path(["a"] * (dcql.MAX_PATH_LENGTH + 1))


# -- property test against a simple recursive model -----------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3)
    ),
    max_leaves=12,
)
_component = st.none() | st.integers(0, 3) | st.sampled_from(["a", "b", "c"])


def _model(path: list, node: Any) -> list[Any]:
    """Reference semantics; raises TypeError where §7.1.1 aborts."""
    if not path:
        return [node]
    head, rest = path[0], path[1:]
    if isinstance(head, str):
        if not isinstance(node, dict):
            raise TypeError
        return _model(rest, node[head]) if head in node else []
    if not isinstance(node, list):
        raise TypeError
    items = node if head is None else node[head : head + 1]
    out: list[Any] = []
    for item in items:
        out.extend(_model(rest, item))
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), _json, max_size=3),
    st.lists(_component, min_size=1, max_size=4),
)
def test_select_matches_model(doc: dict, path: list) -> None:
    # Depth-first and breadth-first visit the same elements at every step, so both abort on
    # a type error exactly when the other does; an empty result is an error in §7.1.1.
    try:
        expected = _model(path, doc)
    except TypeError:
        with pytest.raises(ClaimsPathError, match="non-"):
            dcql.select(path, doc)
        return
    if not expected:
        with pytest.raises(ClaimsPathError, match="selects nothing"):
            dcql.select(path, doc)
        return
    assert dcql.select(path, doc) == expected


# -- parse_query: one test per rule --------------------------------------------------------


def _with(change: Any) -> dict:
    vector = copy.deepcopy(SIMPLE)
    change(vector)
    return vector


def _credential(vector: dict) -> dict:
    return vector["credentials"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.clear(), "credentials"),
        (lambda v: v.update(credentials=[]), "credentials"),
        (lambda v: v.update(credentials={}), "credentials"),
        (lambda v: v.update(credentials=["x"]), "credential query must be"),
        (lambda v: _credential(v).pop("id"), "id"),
        (lambda v: _credential(v).update(id="bad id"), "id"),
        (lambda v: _credential(v).update(id=""), "id"),
        (lambda v: _credential(v).update(id="ä"), "id"),
        (lambda v: v["credentials"].append(copy.deepcopy(_credential(v))), "unique"),
        (lambda v: _credential(v).pop("format"), "format"),
        (lambda v: _credential(v).update(format=7), "format"),
        (lambda v: _credential(v).pop("meta"), "meta is required"),
        (lambda v: _credential(v).update(meta=[]), "meta must be"),
        (lambda v: _credential(v).update(meta={}), "vct_values is required"),
        (lambda v: _credential(v).update(meta={"vct_values": []}), "vct_values"),
        (lambda v: _credential(v).update(meta={"vct_values": "x"}), "vct_values"),
        (lambda v: _credential(v).update(meta={"vct_values": [1]}), "vct_values"),
        (lambda v: _credential(v).update(multiple="yes"), "multiple"),
        (lambda v: _credential(v).update(require_cryptographic_holder_binding=1), "holder"),
        (lambda v: _credential(v).update(claims=[]), "claims"),
        (lambda v: _credential(v).update(claims=[{"id": "x"}]), "claims path"),
        (lambda v: _credential(v).update(claims=[{"path": []}]), "claims path"),
        (lambda v: _credential(v).update(claims=[{"path": ["a", -1]}]), "claims path"),
        (lambda v: _credential(v).update(claims=[{"path": ["a"], "id": "bad id"}]), "claim id"),
        (
            lambda v: _credential(v).update(
                claims=[{"path": ["a"], "id": "x"}, {"path": ["b"], "id": "x"}]
            ),
            "unique",
        ),
        (lambda v: _credential(v).update(claims=[{"path": ["a"]}, {"path": ["a"]}]), "twice"),
        (lambda v: _credential(v).update(claims=[{"path": ["a"], "values": []}]), "values"),
        (lambda v: _credential(v).update(claims=[{"path": ["a"], "values": [1.5]}]), "values"),
        (lambda v: _credential(v).update(claims=[{"path": ["a"], "values": [None]}]), "values"),
        (lambda v: _credential(v).update(claims=[{"path": ["a"], "values": [{}]}]), "values"),
        (lambda v: _credential(v).update(claim_sets=[["x"]]), "id"),  # claims have no ids
        (
            lambda v: _credential(v).pop("claims") and _credential(v).update(claim_sets=[["a"]]),
            "without claims",
        ),
        (
            lambda v: _credential(v).update(claims=[{"id": "a", "path": ["a"]}], claim_sets=[]),
            "claim_sets",
        ),
        (
            lambda v: _credential(v).update(
                claims=[{"id": "a", "path": ["a"]}], claim_sets=[["b"]]
            ),
            "unknown claim id",
        ),
        (
            lambda v: _credential(v).update(claims=[{"id": "a", "path": ["a"]}], claim_sets=[[]]),
            "claim set",
        ),
        (lambda v: _credential(v).update(trusted_authorities=[]), "trusted_authorities"),
        (
            lambda v: _credential(v).update(trusted_authorities=[{"type": "x", "values": ["v"]}]),
            "type",
        ),
        (
            lambda v: _credential(v).update(trusted_authorities=[{"type": "aki", "values": []}]),
            "values",
        ),
        (
            lambda v: _credential(v).update(trusted_authorities=[{"type": "aki"}]),
            "values",
        ),
        (lambda v: v.update(credential_sets=[]), "credential_sets"),
        (lambda v: v.update(credential_sets=[{"options": []}]), "options"),
        (lambda v: v.update(credential_sets=[{"options": [[]]}]), "option"),
        (lambda v: v.update(credential_sets=[{"options": [["other"]]}]), "unknown credential"),
        (
            lambda v: v.update(credential_sets=[{"options": [["my_credential"]], "required": 0}]),
            "required",
        ),
    ],
)
def test_parse_rejections(change: Any, message: str) -> None:
    with pytest.raises(DCQLError, match=message):
        dcql.parse_query(_with(change))


def test_not_an_object() -> None:
    with pytest.raises(DCQLError, match="object"):
        dcql.parse_query([])  # type: ignore[arg-type]


def test_malformed_json_text() -> None:
    with pytest.raises(DCQLError, match="dcql_query"):
        dcql.parse_query('{"credentials": [}')


def test_duplicate_members_in_json_text() -> None:
    with pytest.raises(DCQLError, match="duplicate"):
        dcql.parse_query('{"credentials": [], "credentials": []}')


def test_oversized_json_text() -> None:
    with pytest.raises(DCQLError):
        dcql.parse_query('{"credentials": [' + " " * dcql.MAX_QUERY_BYTES + "]}")


def test_too_many_credential_queries() -> None:
    many = [dict(_credential(SIMPLE), id=f"q{i}") for i in range(dcql.MAX_CREDENTIAL_QUERIES + 1)]
    with pytest.raises(DCQLError, match="more than"):
        dcql.parse_query({"credentials": many})


def test_mdoc_rules() -> None:
    good = MULTI_CREDENTIALS["credentials"][1]
    with pytest.raises(DCQLError, match="doctype_value"):
        dcql.parse_query({"credentials": [dict(good, meta={})]})
    with pytest.raises(DCQLError, match="namespace"):
        dcql.parse_query({"credentials": [dict(good, claims=[{"path": ["only_one"]}])]})
    with pytest.raises(DCQLError, match="intent_to_retain"):
        dcql.parse_query(
            {"credentials": [dict(good, claims=[{"path": ["n", "e"], "intent_to_retain": 1}])]}
        )


def test_w3c_type_values_rules() -> None:
    good = JWT_VC["credentials"][0]
    for meta in ({}, {"type_values": []}, {"type_values": ["IDCredential"]}, {"type_values": [[]]}):
        with pytest.raises(DCQLError, match="type_values"):
            dcql.parse_query({"credentials": [dict(good, meta=meta)]})


# -- wallet side: match ----------------------------------------------------------------------


def pid(credential_id: str = "w1", **claims: Any) -> Candidate:
    return Candidate(credential_id, "dc+sd-jwt", (PID_VCT,), claims, tuple((k,) for k in claims))


def test_match_simple() -> None:
    candidate = pid(
        family_name="Doe", given_name="John", address={"street_address": "S 1"}, birthdate="x"
    )
    selection = dcql.match(dcql.parse_query(SIMPLE), [candidate])
    assert selection.satisfied and selection.requested == ("my_credential",)
    [found] = selection.matches["my_credential"]
    assert found.claim_paths == (("family_name",), ("given_name",), ("address", "street_address"))
    # birthdate is selectively disclosable but was not requested: never released.
    assert found.disclosed == (("family_name",), ("given_name",), ("address",))


def test_match_wrong_vct_or_format() -> None:
    query = dcql.parse_query(SIMPLE)
    other = Candidate("w", "dc+sd-jwt", ("https://other",), {"family_name": "x"})
    mdoc = Candidate("w", "mso_mdoc", (PID_VCT,), {})
    selection = dcql.match(query, [other, mdoc])
    assert not selection.satisfied and selection.requested == () and not selection.matches


def test_match_missing_claim() -> None:
    selection = dcql.match(dcql.parse_query(SIMPLE), [pid(family_name="Doe", given_name="J")])
    assert not selection.satisfied


def test_claim_sets_first_satisfiable_option() -> None:
    query = dcql.parse_query(CLAIMS_ALTERNATIVES)
    both = pid("both", last_name="D", postal_code="1", locality="L", region="R", date_of_birth="d")
    postal = pid("postal", last_name="D", postal_code="1", date_of_birth="d")
    neither = pid("neither", last_name="D", date_of_birth="d")
    found = {
        m.candidate.credential_id: m
        for m in dcql.match(query, [both, postal, neither]).matches["pid"]
    }
    assert set(found) == {"both", "postal"}
    assert found["both"].claim_set == 0
    assert found["both"].claim_paths == (
        ("last_name",),
        ("locality",),
        ("region",),
        ("date_of_birth",),
    )
    assert ("postal_code",) not in found["both"].disclosed
    assert found["postal"].claim_set == 1
    assert found["postal"].claim_paths == (("last_name",), ("postal_code",), ("date_of_birth",))


def test_value_matching_exact_type_and_value() -> None:
    query = dcql.parse_query(VALUE_MATCHING)
    base = {"family_name": "Doe", "given_name": "J", "address": {"street_address": "s"}}
    good = pid("good", **base, postal_code="90211")
    wrong_value = pid("wrong", **base, postal_code="12345")
    wrong_type = pid("type", **base, postal_code=90210)
    found = dcql.match(query, [good, wrong_value, wrong_type]).matches["my_credential"]
    assert [m.candidate.credential_id for m in found] == ["good"]


def test_value_matching_bool_is_not_int() -> None:
    assert dcql.value_matches(True, [True]) and not dcql.value_matches(1, [True])
    assert not dcql.value_matches(True, [1]) and not dcql.value_matches(5.0, [5])


def test_value_matching_with_wildcard_discloses_only_matching_elements() -> None:
    query = dcql.parse_query(
        {
            "credentials": [
                dict(
                    _credential(SIMPLE),
                    claims=[{"path": ["nationalities", None], "values": ["SE"]}],
                )
            ]
        }
    )
    candidate = Candidate(
        "w",
        "dc+sd-jwt",
        (PID_VCT,),
        {"nationalities": ["FI", "SE"]},
        (("nationalities", 0), ("nationalities", 1)),
    )
    [found] = dcql.match(query, [candidate]).matches["my_credential"]
    assert found.claim_paths == (("nationalities", 1),)
    assert found.disclosed == (("nationalities", 1),)


def test_no_claims_requests_only_mandatory_parts() -> None:
    query = dcql.parse_query(
        {"credentials": [{"id": "q", "format": "dc+sd-jwt", "meta": {"vct_values": [PID_VCT]}}]}
    )
    [found] = dcql.match(query, [pid(given_name="J")]).matches["q"]
    assert found.claim_paths == () and found.disclosed == ()


def test_holder_binding_required_by_default() -> None:
    query = dcql.parse_query(SIMPLE)
    claims = {"family_name": "D", "given_name": "J", "address": {"street_address": "s"}}
    unbound = Candidate("w", "dc+sd-jwt", (PID_VCT,), claims, holder_binding=False)
    assert not dcql.match(query, [unbound]).matches
    relaxed = _with(lambda v: _credential(v).update(require_cryptographic_holder_binding=False))
    assert dcql.match(dcql.parse_query(relaxed), [unbound]).matches


def test_trusted_authorities_aki() -> None:
    query = dcql.parse_query(
        _with(
            lambda v: _credential(v).update(
                trusted_authorities=[{"type": "aki", "values": ["s9tIpPmhxdiuNkHMEWNpYim8S8Y"]}]
            )
        )
    )
    claims = {"family_name": "D", "given_name": "J", "address": {"street_address": "s"}}
    trusted = Candidate(
        "t", "dc+sd-jwt", (PID_VCT,), claims, authority_key_ids=("s9tIpPmhxdiuNkHMEWNpYim8S8Y",)
    )
    untrusted = Candidate("u", "dc+sd-jwt", (PID_VCT,), claims, authority_key_ids=("other",))
    found = dcql.match(query, [trusted, untrusted]).matches["my_credential"]
    assert [m.candidate.credential_id for m in found] == ["t"]


def test_trusted_authorities_other_types() -> None:
    query = dcql.parse_query(
        _with(
            lambda v: _credential(v).update(
                trusted_authorities=[{"type": "etsi_tl", "values": ["https://lotl.example.com"]}]
            )
        )
    )
    claims = {"family_name": "D", "given_name": "J", "address": {"street_address": "s"}}
    listed = Candidate(
        "t", "dc+sd-jwt", (PID_VCT,), claims, authorities={"etsi_tl": ("https://lotl.example.com",)}
    )
    assert (
        dcql.match(query, [listed, Candidate("u", "dc+sd-jwt", (PID_VCT,), claims)])
        .matches["my_credential"][0]
        .candidate.credential_id
        == "t"
    )


def test_jwt_vc_type_values() -> None:
    query = dcql.parse_query(JWT_VC)
    claims = {"credentialSubject": {"family_name": "D", "given_name": "J"}}
    good = Candidate("g", "jwt_vc_json", ("VerifiableCredential", "IDCredential"), claims)
    bad = Candidate("b", "jwt_vc_json", ("VerifiableCredential",), claims)
    found = dcql.match(query, [good, bad]).matches["example_jwt_vc"]
    assert [m.candidate.credential_id for m in found] == ["g"]


def test_credential_sets_combination() -> None:
    query = dcql.parse_query(CREDENTIALS_ALTERNATIVES)
    reduced1 = Candidate(
        "r1",
        "dc+sd-jwt",
        ("https://credentials.example.com/reduced_identity_credential",),
        {"family_name": "D", "given_name": "J"},
    )
    reduced2 = Candidate(
        "r2",
        "dc+sd-jwt",
        ("https://cred.example/residence_credential",),
        {"postal_code": "1", "locality": "L", "region": "R"},
    )
    selection = dcql.match(query, [reduced1, reduced2])
    assert selection.satisfied
    assert selection.sets[0].chosen == ("pid_reduced_cred_1", "pid_reduced_cred_2")
    assert selection.sets[1].chosen is None  # optional, not available
    assert selection.requested == ("pid_reduced_cred_1", "pid_reduced_cred_2")
    # Only one of the pair: the required set cannot be met, so nothing is returned.
    assert not dcql.match(query, [reduced1]).satisfied
    assert dcql.match(query, [reduced1]).requested == ()


def test_credential_sets_prefer_first_option_and_include_optional() -> None:
    query = dcql.parse_query(CREDENTIALS_ALTERNATIVES)
    full = pid("p", given_name="J", family_name="D", address={"street_address": "s"})
    rewards = Candidate(
        "n", "dc+sd-jwt", ("https://company.example/company_rewards",), {"rewards_number": 7}
    )
    selection = dcql.match(query, [full, rewards])
    assert selection.requested == ("pid", "nice_to_have")


def test_without_credential_sets_all_required() -> None:
    query = dcql.parse_query(MULTI_CREDENTIALS)
    full = pid("p", given_name="J", family_name="D", address={"street_address": "s"})
    assert not dcql.match(query, [full]).satisfied
    mdoc = Candidate(
        "m",
        "mso_mdoc",
        ("org.iso.7367.1.mVRC",),
        {"org.iso.7367.1": {"vehicle_holder": "J"}, "org.iso.18013.5.1": {"given_name": "J"}},
    )
    assert dcql.match(query, [full, mdoc]).requested == ("pid", "mdl")


def test_match_then_present_releases_only_requested() -> None:
    issuer = jose.generate_key("ES256")
    holder = jose.generate_key("ES256")
    credential = sdjwt_vc.issue_vc(
        {
            "iss": "https://issuer.example",
            "vct": PID_VCT,
            SD("family_name"): "Doe",
            SD("given_name"): "John",
            SD("birthdate"): "1940-01-01",
            SD("address"): {SD("street_address"): "S 1", SD("locality"): "L"},
        },
        issuer,
        holder_jwk=holder.public_jwk(),
    )
    decoded = sdjwt.decode_unverified(credential)
    candidate = Candidate(
        "w", "dc+sd-jwt", (PID_VCT,), decoded.claims, tuple(sdjwt.disclosable_paths(credential))
    )
    [found] = dcql.match(dcql.parse_query(SIMPLE), [candidate]).matches["my_credential"]
    presentation = sdjwt.present(
        credential, found.claim_paths, holder_key=holder, aud="x509_hash:abc", nonce="n" * 22
    )
    verified = sdjwt_vc.verify_vc(
        presentation, lambda h, c: issuer, audience="x509_hash:abc", nonce="n" * 22
    )
    assert set(verified.disclosed_paths) == set(found.disclosed)
    assert "birthdate" not in verified.claims and "locality" not in verified.claims["address"]
    check = dcql.check_presentation_set(
        dcql.parse_query(SIMPLE),
        {"my_credential": [Presented(verified.claims, verified.disclosed_paths)]},
    )
    assert check.satisfied and check.reports[0].extra_claims == ()


# -- verifier side: check_presentation_set ---------------------------------------------------

INSKRIVNING = {
    "vct": "https://intyg.example/vct/af-inskrivningsintyg/1",
    "registered_since": "2026-01-12",
    "registration_category": {"code": "11"},
}
KVAL = {"vct": "https://intyg.example/vct/myh-kvalifikation/1", "title": "X", "eqf_level": 5}


def test_journey_b_satisfied() -> None:
    query = dcql.parse_query(JOURNEY_B)
    check = dcql.check_presentation_set(
        query, {"inskrivning": [INSKRIVNING], "kval": [KVAL, dict(KVAL, eqf_level=6)]}
    )
    assert check.satisfied and check.answered == {"inskrivning", "kval"}
    assert check.sets_satisfied == (True, True)


def test_optional_set_may_be_absent() -> None:
    check = dcql.check_presentation_set(dcql.parse_query(JOURNEY_B), {"inskrivning": [INSKRIVNING]})
    assert check.satisfied and check.sets_satisfied == (True, False)


def test_required_set_missing() -> None:
    check = dcql.check_presentation_set(dcql.parse_query(JOURNEY_B), {"kval": [KVAL]})
    assert not check.satisfied and not check.required_sets_satisfied


def test_without_sets_every_query_required() -> None:
    check = dcql.check_presentation_set(
        dcql.parse_query(MULTI_CREDENTIALS),
        {
            "pid": [
                {
                    "vct": PID_VCT,
                    "given_name": "J",
                    "family_name": "D",
                    "address": {"street_address": "s"},
                }
            ]
        },
    )
    assert not check.satisfied and check.answered == {"pid"}


def test_missing_claim_reported() -> None:
    claims = {k: v for k, v in INSKRIVNING.items() if k != "registered_since"}
    check = dcql.check_presentation_set(dcql.parse_query(JOURNEY_B), {"inskrivning": [claims]})
    assert not check.satisfied
    assert check.reports[0].missing_claims == (("registered_since",),)


def test_value_mismatch_reported() -> None:
    check = dcql.check_presentation_set(
        dcql.parse_query(JOURNEY_B),
        {"inskrivning": [INSKRIVNING], "kval": [dict(KVAL, eqf_level=4)]},
    )
    report = next(r for r in check.reports if r.query_id == "kval")
    assert report.value_mismatches == (("eqf_level",),) and not report.ok
    assert check.answered == {"inskrivning"} and check.satisfied is False


def test_multiple_violation() -> None:
    check = dcql.check_presentation_set(
        dcql.parse_query(JOURNEY_B), {"inskrivning": [INSKRIVNING, INSKRIVNING]}
    )
    assert check.multiple_violations == ("inskrivning",) and not check.satisfied


def test_empty_presentation_list_is_a_violation() -> None:
    check = dcql.check_presentation_set(dcql.parse_query(JOURNEY_B), {"inskrivning": []})
    assert check.multiple_violations == ("inskrivning",) and not check.satisfied


def test_unknown_query_id() -> None:
    check = dcql.check_presentation_set(
        dcql.parse_query(JOURNEY_B), {"inskrivning": [INSKRIVNING], "evil": [KVAL]}
    )
    assert check.unknown_ids == ("evil",) and not check.satisfied


def test_extra_disclosed_claims_reported_not_fatal() -> None:
    item = Presented(
        dict(INSKRIVNING, personal_number="x"),
        (("registered_since",), ("registration_category",), ("personal_number",)),
    )
    check = dcql.check_presentation_set(dcql.parse_query(JOURNEY_B), {"inskrivning": [item]})
    assert check.satisfied
    assert check.reports[0].extra_claims == (("personal_number",),)


def test_meta_mismatch() -> None:
    check = dcql.check_presentation_set(
        dcql.parse_query(JOURNEY_B), {"inskrivning": [dict(INSKRIVNING, vct="https://x")]}
    )
    assert check.reports[0].meta_mismatch and not check.satisfied
    subtype = Presented(
        dict(INSKRIVNING, vct="https://sub"), types=("https://sub", INSKRIVNING["vct"])
    )
    assert dcql.check_presentation_set(
        dcql.parse_query(JOURNEY_B), {"inskrivning": [subtype]}
    ).satisfied


def test_verifier_claim_sets() -> None:
    query = dcql.parse_query(CLAIMS_ALTERNATIVES)
    second = {"vct": PID_VCT, "last_name": "D", "postal_code": "1", "date_of_birth": "d"}
    assert dcql.check_presentation_set(query, {"pid": [second]}).satisfied
    neither = {"vct": PID_VCT, "last_name": "D", "date_of_birth": "d"}
    check = dcql.check_presentation_set(query, {"pid": [neither]})
    assert not check.satisfied
    assert check.reports[0].missing_claims == (("locality",), ("region",))


def test_verifier_jwt_vc_types() -> None:
    query = dcql.parse_query(JWT_VC)
    vc = {
        "type": ["VerifiableCredential", "IDCredential"],
        "credentialSubject": {"family_name": "D", "given_name": "J"},
    }
    assert dcql.check_presentation_set(query, {"example_jwt_vc": [vc]}).satisfied
    wrong = dict(vc, type="VerifiableCredential")
    assert not dcql.check_presentation_set(query, {"example_jwt_vc": [wrong]}).satisfied
