"""intyg.schemas and schemas/: examples, consistency of type metadata, one test per rule."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from intyg import schemas
from intyg.schemas import (
    CREDENTIAL_TYPES,
    QUALIFICATION_ATTESTATION_VCT,
    REGISTRATION_CERTIFICATE_VCT,
    SchemaError,
    always_disclosable_paths,
    check_type_metadata,
    claim_display,
    example_subjects,
    json_path,
    json_schema,
    mandatory_paths,
    resolve_type,
    sd_rules,
    selectively_disclosable_paths,
    type_metadata,
    validate_subject,
)

RC = "RegistrationCertificate"
QA = "QualificationAttestation"
IDENTITY_CLAIMS = ("personal_identity_number", "given_name", "family_name", "birthdate")
ALL_EXAMPLES = [(name, stem) for name in CREDENTIAL_TYPES for stem in example_subjects(name)]


def qualification() -> dict:
    return copy.deepcopy(example_subjects(QA)["yh-mjukvaruutvecklare"])


def registration() -> dict:
    return copy.deepcopy(example_subjects(RC)["registered-in-programme"])


def refused(vct: str, subject: dict, path: str, rule: str, **kwargs) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        validate_subject(vct, subject, **kwargs)
    error = caught.value
    assert error.path == path, str(error)
    assert error.rule == rule, str(error)
    assert str(error).startswith(f"{path}: ")
    return error


# --- documents ----------------------------------------------------------------------------


def test_vct_constants_match_contract():
    assert REGISTRATION_CERTIFICATE_VCT == "https://intyg.example/vct/af-inskrivningsintyg/1"
    assert QUALIFICATION_ATTESTATION_VCT == "https://intyg.example/vct/myh-kvalifikation/1"
    assert CREDENTIAL_TYPES == {RC: REGISTRATION_CERTIFICATE_VCT, QA: QUALIFICATION_ATTESTATION_VCT}


@pytest.mark.parametrize("name", CREDENTIAL_TYPES)
def test_vct_and_type_name_resolve_to_the_same_documents(name):
    vct = CREDENTIAL_TYPES[name]
    assert resolve_type(name) is resolve_type(vct)
    assert type_metadata(vct)["vct"] == vct
    assert type_metadata(name) is type_metadata(vct)
    assert json_schema(name) is json_schema(vct)


@pytest.mark.parametrize("name", CREDENTIAL_TYPES)
def test_json_schema_is_valid_draft_2020_12(name):
    schema = json_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://intyg.example/schemas/")
    assert schema["additionalProperties"] is False
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", CREDENTIAL_TYPES)
def test_type_metadata_is_consistent_with_schema(name):
    check_type_metadata(name)


@pytest.mark.parametrize("name", CREDENTIAL_TYPES)
def test_type_metadata_display_has_sv_and_en(name):
    display = type_metadata(name)["display"]
    assert [entry["locale"] for entry in display] == ["sv", "en"]
    for entry in display:
        assert entry["name"] and entry["description"]
        simple = entry["rendering"]["simple"]
        assert simple["background_color"].startswith("#")
        assert simple["text_color"].startswith("#")


@pytest.mark.parametrize("name", CREDENTIAL_TYPES)
def test_every_schema_property_has_claim_metadata(name):
    paths = set(sd_rules(name))
    for claim in json_schema(name)["properties"]:
        assert (claim,) in paths


def test_identity_claims_are_defined_identically_in_both_schemas():
    rc, qa = json_schema(RC)["properties"], json_schema(QA)["properties"]
    for claim in IDENTITY_CLAIMS:
        assert rc[claim] == qa[claim]


@pytest.mark.parametrize(("name", "stem"), ALL_EXAMPLES)
def test_examples_validate(name, stem):
    validate_subject(name, example_subjects(name)[stem])
    validate_subject(CREDENTIAL_TYPES[name], example_subjects(name)[stem])


def test_there_are_examples_for_each_type():
    assert len(example_subjects(RC)) >= 1
    assert len(example_subjects(QA)) >= 1


def test_qualification_example_is_the_software_developer_at_eqf_5():
    subject = qualification()
    assert subject["title"]["sv"] == "Yrkeshögskoleexamen Mjukvaruutvecklare"
    assert subject["eqf_level"] == subject["seqf_level"] == 5
    assert subject["ssyk_codes"] == ["2512"]


# --- selective disclosure and display -----------------------------------------------------


@pytest.mark.parametrize("name", CREDENTIAL_TYPES)
def test_identity_claims_are_always_selectively_disclosable(name):
    assert always_disclosable_paths(name) == {(claim,) for claim in IDENTITY_CLAIMS}
    rules = sd_rules(name)
    assert {sd for path, sd in rules.items() if path[0] not in IDENTITY_CLAIMS} == {"allowed"}


@pytest.mark.parametrize("name", CREDENTIAL_TYPES)
def test_selectively_disclosable_paths_follow_sd_values(name):
    paths = selectively_disclosable_paths(name)
    assert ("personal_identity_number",) in paths
    assert paths == {path for path, sd in sd_rules(name).items() if sd != "never"}


def test_mandatory_paths_are_the_required_claims():
    assert ("registered_since",) not in mandatory_paths(RC)  # only while registered
    assert ("programme",) not in mandatory_paths(RC)
    assert ("registration_category", "code") in mandatory_paths(RC)
    assert ("awarded_on",) in mandatory_paths(QA)
    assert ("decision_valid_until",) not in mandatory_paths(QA)


def test_claim_display_sv_and_en():
    sv = claim_display(QUALIFICATION_ATTESTATION_VCT, "sv")
    en = claim_display(QUALIFICATION_ATTESTATION_VCT, "en")
    assert sv[("learning_outcomes", "responsibility_autonomy")] == "Ansvar och självständighet"
    assert en[("learning_outcomes", "responsibility_autonomy")] == "Responsibility and autonomy"
    assert sv[("personal_identity_number",)] == "Personnummer"
    assert en[("eqf_level",)] == "EQF level"
    assert set(sv) == set(en) == set(sd_rules(QA))


def test_claim_display_locale_matching():
    assert claim_display(RC, "sv-SE")[("registered_since",)] == "Inskriven sedan"
    assert claim_display(RC, "EN-gb")[("registered_since",)] == "Registered since"
    assert claim_display(RC, "fi")[("registered_since",)] == "Registered since"


def test_json_path_rendering():
    assert json_path(["learning_outcomes", "skills", 2]) == "$.learning_outcomes.skills[2]"
    assert json_path(["degrees", None, "type"]) == "$.degrees[*].type"
    assert json_path(["odd key"]) == "$['odd key']"
    assert json_path([]) == "$"


# --- one negative test per rule -----------------------------------------------------------


def test_unknown_vct_refused():
    with pytest.raises(SchemaError, match="unknown credential type") as caught:
        validate_subject("https://intyg.example/vct/other/1", registration())
    assert caught.value.rule == "vct"
    with pytest.raises(SchemaError, match="unknown credential type"):
        type_metadata("Registrationcertificate")


def test_subject_must_be_an_object():
    with pytest.raises(SchemaError, match="object"):
        validate_subject(RC, ["not", "an", "object"])  # type: ignore[arg-type]


def test_wrong_type_refused():
    subject = qualification()
    subject["eqf_level"] = "5"
    error = refused(QA, subject, "$.eqf_level", "type")
    assert "integer" in str(error)
    subject = registration()
    subject["registered"] = "yes"
    refused(RC, subject, "$.registered", "type")


def test_missing_required_claim_refused():
    subject = qualification()
    del subject["awarding_body"]
    refused(QA, subject, "$.awarding_body", "required")


def test_missing_nested_required_claim_refused():
    subject = registration()
    del subject["registration_category"]["label"]
    refused(RC, subject, "$.registration_category.label", "required")


def test_extra_property_refused():
    subject = registration()
    subject["nickname"] = "Ellie"
    refused(RC, subject, "$.nickname", "additionalProperties")


def test_extra_nested_property_refused():
    subject = qualification()
    subject["awarding_body"]["homepage"] = "https://example.se"
    refused(QA, subject, "$.awarding_body.homepage", "additionalProperties")


def test_token_claims_are_not_subject_claims():
    subject = registration()
    subject["exp"] = 1_900_000_000
    refused(RC, subject, "$.exp", "additionalProperties")


@pytest.mark.parametrize(
    ("claim", "value", "rule"),
    [
        ("eqf_level", 9, "maximum"),
        ("eqf_level", 0, "minimum"),
        ("seqf_level", 9, "maximum"),
        ("seqf_level", 0, "minimum"),
    ],
)
def test_level_outside_1_to_8_refused(claim, value, rule):
    subject = qualification()
    subject[claim] = value
    refused(QA, subject, f"$.{claim}", rule)


def test_fractional_level_refused():
    subject = qualification()
    subject["eqf_level"] = 5.5
    refused(QA, subject, "$.eqf_level", "type")


@pytest.mark.parametrize("value", ["2025-02-30", "20250605", "2025-6-5", "2025-06-05T00:00:00Z"])
def test_bad_date_refused(value):
    subject = qualification()
    subject["awarded_on"] = value
    error = refused(QA, subject, "$.awarded_on", "format")
    assert "date" in str(error)


def test_bad_nested_date_refused():
    subject = registration()
    subject["programme"]["since"] = "2026-13-01"
    refused(RC, subject, "$.programme.since", "format")


@pytest.mark.parametrize("value", ["not-a-uuid", "3f0c8b2e6d1a4c579e2b8a4d7c1e5f90", ""])
def test_bad_uuid_refused(value):
    subject = qualification()
    subject["qualification_id"] = value
    refused(QA, subject, "$.qualification_id", "format")


@pytest.mark.parametrize("value", ["251", "25120", "25a2"])
def test_bad_ssyk_refused(value):
    subject = qualification()
    subject["ssyk_codes"] = ["2512", value]
    refused(QA, subject, "$.ssyk_codes[1]", "pattern")


def test_duplicate_ssyk_refused():
    subject = qualification()
    subject["ssyk_codes"] = ["2512", "2512"]
    refused(QA, subject, "$.ssyk_codes", "uniqueItems")


@pytest.mark.parametrize("value", ["5566778899", "556677-889", "551677-8899", "556677 8899"])
def test_bad_org_number_pattern_refused(value):
    subject = qualification()
    subject["awarding_body"]["org_number"] = value
    refused(QA, subject, "$.awarding_body.org_number", "pattern")


def test_org_number_check_digit_refused():
    subject = qualification()
    subject["awarding_body"]["org_number"] = "556677-8898"
    refused(QA, subject, "$.awarding_body.org_number", "organisationsnummer")


def test_luhn_invalid_personal_number_refused():
    subject = qualification()
    subject["personal_identity_number"] = "200306062382"
    error = refused(QA, subject, "$.personal_identity_number", "personnummer")
    assert "check digit" in str(error)
    assert "200306062382" not in str(error)


def test_personal_number_must_be_twelve_digits_without_separator():
    for value in ("030606-2381", "20030606-2381", "0306062381"):
        subject = registration()
        subject["personal_identity_number"] = value
        error = refused(RC, subject, "$.personal_identity_number", "pattern")
        assert value not in str(error)  # messages never echo claim values


def test_invalid_date_in_personal_number_refused_by_pattern():
    subject = registration()
    subject["personal_identity_number"] = "200313062381"
    refused(RC, subject, "$.personal_identity_number", "pattern")


def test_error_names_array_element_path():
    subject = qualification()
    subject["learning_outcomes"]["skills"][2] = ""
    error = refused(QA, subject, "$.learning_outcomes.skills[2]", "minLength")
    assert str(error).startswith("$.learning_outcomes.skills[2]: ")


def test_empty_learning_outcome_block_refused():
    subject = qualification()
    subject["learning_outcomes"]["knowledge"] = []
    refused(QA, subject, "$.learning_outcomes.knowledge", "minItems")


def test_title_needs_swedish():
    subject = qualification()
    del subject["title"]["sv"]
    refused(QA, subject, "$.title.sv", "required")


def test_registered_requires_registered_since():
    subject = registration()
    del subject["registered_since"]
    refused(RC, subject, "$.registered_since", "required")


def test_not_registered_carries_no_registration_details():
    subject = registration()
    subject["registered"] = False
    refused(RC, subject, "$.programme", "not")
    del subject["programme"]
    refused(RC, subject, "$.registered_since", "not")
    del subject["registered_since"]
    validate_subject(RC, subject)


def test_bad_registration_category_code_refused():
    subject = registration()
    subject["registration_category"]["code"] = "ABC"
    refused(RC, subject, "$.registration_category.code", "pattern")


def test_first_error_in_path_order_is_reported():
    subject = qualification()
    subject["eqf_level"] = 0
    subject["awarded_on"] = "yesterday"
    refused(QA, subject, "$.awarded_on", "format")


def test_extra_member_name_is_bounded_in_message():
    subject = registration()
    subject["x" * 500 + " y"] = 1
    with pytest.raises(SchemaError) as caught:
        validate_subject(RC, subject)
    assert len(str(caught.value)) < 200


# --- partial (disclosed claims at a verifier) ---------------------------------------------


def test_partial_subject_does_not_need_undisclosed_claims():
    disclosed = {"registered": True, "registration_category": {"code": "11"}}
    validate_subject(RC, disclosed, partial=True)
    with pytest.raises(SchemaError):
        validate_subject(RC, disclosed)


def test_partial_subject_still_checks_every_other_rule():
    refused(QA, {"eqf_level": 9}, "$.eqf_level", "maximum", partial=True)
    refused(RC, {"nickname": "x"}, "$.nickname", "additionalProperties", partial=True)
    refused(
        QA,
        {"personal_identity_number": "198112189875"},
        "$.personal_identity_number",
        "personnummer",
        partial=True,
    )


# --- consistency check catches broken metadata ------------------------------------------------


@pytest.fixture
def scratch_schemas(tmp_path, monkeypatch):
    """A copy of schemas/ that a test may break; caches cleared before and after."""
    shutil.copytree(schemas.SCHEMAS_DIR, tmp_path / "schemas")
    monkeypatch.setattr(schemas, "SCHEMAS_DIR", tmp_path / "schemas")
    _clear_caches()
    yield tmp_path / "schemas"
    _clear_caches()


def _clear_caches():
    schemas._load_type.cache_clear()
    schemas._sd_rules.cache_clear()
    schemas._claim_display.cache_clear()


def _edit_metadata(folder: Path, name: str, edit) -> None:
    path = folder / name / "type-metadata.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    edit(document)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def _claim(document: dict, path: list) -> dict:
    return next(claim for claim in document["claims"] if claim["path"] == path)


def test_metadata_path_missing_from_schema_detected(scratch_schemas):
    _edit_metadata(
        scratch_schemas,
        QA,
        lambda doc: doc["claims"].append(
            {"path": ["learning_outcomes", "attitudes"], "display": doc["claims"][0]["display"]}
        ),
    )
    with pytest.raises(SchemaError, match=r"\$\.learning_outcomes\.attitudes: .*not in the schema"):
        check_type_metadata(QA)


def test_metadata_mandatory_disagreeing_with_schema_detected(scratch_schemas):
    _edit_metadata(
        scratch_schemas, RC, lambda doc: _claim(doc, ["programme"]).update(mandatory=True)
    )
    with pytest.raises(SchemaError, match=r"\$\.programme: mandatory"):
        check_type_metadata(RC)


def test_metadata_bad_sd_value_detected(scratch_schemas):
    _edit_metadata(
        scratch_schemas, RC, lambda doc: _claim(doc, ["given_name"]).update(sd="sometimes")
    )
    with pytest.raises(SchemaError, match=r"\$\.given_name: sd"):
        check_type_metadata(RC)


def test_metadata_missing_locale_detected(scratch_schemas):
    _edit_metadata(scratch_schemas, QA, lambda doc: _claim(doc, ["alt_id"])["display"].pop())
    with pytest.raises(SchemaError, match=r"\$\.alt_id: no label for locale \['en'\]"):
        check_type_metadata(QA)


def test_metadata_duplicate_path_detected(scratch_schemas):
    _edit_metadata(scratch_schemas, QA, lambda doc: doc["claims"].append(doc["claims"][0]))
    with pytest.raises(SchemaError, match="listed twice"):
        check_type_metadata(QA)


def test_metadata_with_other_vct_refused_at_load(scratch_schemas):
    _edit_metadata(scratch_schemas, RC, lambda doc: doc.update(vct="https://other.example/vct"))
    with pytest.raises(SchemaError, match="different vct"):
        type_metadata(RC)


def test_schema_files_are_package_data():
    """Every file under schemas/ is matched by the package-data globs of pyproject.toml, so a
    wheel (not only an editable install) carries the credential types."""
    import fnmatch
    import tomllib

    root = Path(schemas.__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["intyg"]
    files = [p.relative_to(root / "schemas") for p in (root / "schemas").rglob("*") if p.is_file()]
    assert files
    for relative in files:
        name = f"_schemas/{relative.as_posix()}"
        matched = [g for g in globs if fnmatch.fnmatch(name, g) and name.count("/") == g.count("/")]
        assert matched, name
    assert (schemas.SCHEMAS_DIR / "RegistrationCertificate" / "schema.json").is_file()
