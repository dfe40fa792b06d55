"""docker-compose.yml and the Dockerfile without Docker (issue 6 item 3): the compose-spec
JSON schema, then what the schema cannot know: healthchecks, the dev profile, setting names
checked against the settings classes, secrets, ports, the image's entrypoint and contents.

tests/system/compose-spec.json is the official Compose Specification schema
(compose-spec/compose-spec, schema/compose-spec.json on master, JSON Schema 2020-12), taken
byte for byte from the copy vendored in check-jsonschema 0.39.0 (PyPI, file
check_jsonschema/builtin_schemas/vendor/compose-spec.json, sha256 d549057e...0e64);
Apache License 2.0, tests/system/compose-spec.LICENSE.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import SecretStr, ValidationError

from intyg.cli import SERVE_FACTORIES, app
from intyg.web.crypto_store import MasterKey
from intyg.web.embedded import DATABASE_SERVICES, DEFAULT_PORTS, SERVICES, container_secrets

from .compose import (
    DOCKERIGNORE,
    ROOT,
    SCHEMA_FILE,
    SECRETS_PREFIX,
    command_port,
    dev_secrets,
    dockerfile_instructions,
    exec_form,
    intyg_services,
    is_one_shot,
    load_compose,
    secret_files,
    settings_class,
)

SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
DEV_SECRETS = dev_secrets()
INIT_SCRIPT = ROOT / "deploy" / "postgres" / "init-databases.sh"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


# -- the Compose Specification ------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec(
    compose: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    assert _errors(validator, compose) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "wallet", "helthcheck"), {"test": ["CMD", "true"]}),  # a typo
        (("services", "wallet", "depends_on", "postgres", "condition"), "service_ready"),
        (("services", "wallet", "restart"), ["no"]),
        (("secrets", "wallet-eid"), {"path": "x"}),
    ],
)
def test_the_schema_rejects_a_broken_file(
    compose: dict[str, Any],
    validator: jsonschema.Draft202012Validator,
    path: tuple[str, ...],
    value: Any,
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert _errors(validator, broken)


def test_secret_files_follow_intyg_secrets_dir(tmp_path: Path) -> None:
    moved = load_compose({"INTYG_SECRETS_DIR": str(tmp_path)})
    assert all(Path(spec["file"]).parent == tmp_path for spec in moved["secrets"].values())
    with pytest.raises(ValueError, match="unsupported interpolation"):
        from .compose import interpolate

        interpolate("${NAME}", {})


# -- services, profiles, healthchecks -----------------------------------------------------------


def test_the_services_of_intyg_up_plus_postgres_and_the_dev_steps(compose: dict[str, Any]) -> None:
    services = compose["services"]
    long_running = {name for name, s in services.items() if not is_one_shot(s)}
    assert long_running == {"postgres", *(service.name for service in SERVICES)}
    one_shots = {name for name, s in services.items() if is_one_shot(s)}
    assert one_shots == {"dev-setup-issuers", "dev-setup-verifier"}


def test_development_eid_and_wiring_only_in_the_dev_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    dev_only = {name for name, s in services.items() if s.get("profiles") == ["dev"]}
    assert dev_only == {"eid", "dev-setup-issuers", "dev-setup-verifier"}
    assert all(s.get("profiles") in (None, ["dev"]) for s in services.values())
    # Without the dev profile the rest must still start: their dependencies on dev-only
    # services are optional (Compose would refuse the file otherwise).
    for name, service in services.items():
        if name in dev_only:
            continue
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec.get("required", True) is (dependency not in dev_only), (name, dependency)


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    for name, service in intyg_services(compose).items():
        check = service["healthcheck"]
        if is_one_shot(service):
            assert check == {"disable": True}, name
            continue
        test = check["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        assert test[-1] == f"http://127.0.0.1:{command_port(service)}/readyz", name
        assert check["start_period"] and check["interval"], name


def test_healthcheck_probe_fails_when_nothing_answers(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The probe script exits non-zero when the URL does not answer 2xx (urllib raises)."""
    probe = compose["services"]["wallet"]["healthcheck"]["test"][3]
    result = subprocess.run(
        ["python3", "-c", probe, "http://127.0.0.1:9/readyz"], capture_output=True, timeout=30
    )
    assert result.returncode != 0


def test_start_order_follows_the_wiring(compose: dict[str, Any]) -> None:
    """As ``intyg up``: eID, issuers, (CAs), verifier, (registry), wallet."""
    services = compose["services"]

    def after(name: str) -> dict[str, str]:
        return {d: spec["condition"] for d, spec in services[name].get("depends_on", {}).items()}

    assert after("issuer-af")["eid"] == after("issuer-myh")["eid"] == "service_healthy"
    assert after("dev-setup-issuers") == {
        "issuer-af": "service_healthy",
        "issuer-myh": "service_healthy",
    }
    assert after("verifier")["dev-setup-issuers"] == "service_completed_successfully"
    assert after("dev-setup-verifier") == {"verifier": "service_healthy"}
    assert after("wallet")["dev-setup-verifier"] == "service_completed_successfully"
    for name in intyg_services(compose):
        if name.startswith(("issuer", "verifier", "wallet", "eid")):
            assert after(name)["postgres"] == "service_healthy", name


# -- ports and networking -------------------------------------------------------------------------


def test_ports_are_those_of_intyg_up_on_loopback(compose: dict[str, Any]) -> None:
    published = compose["services"]["postgres"]["ports"]
    assert sorted(published) == sorted(f"127.0.0.1:{p}:{p}" for p in DEFAULT_PORTS.values())
    for name, service in intyg_services(compose).items():
        assert service["network_mode"] == "service:postgres", name
        if is_one_shot(service):
            continue
        assert command_port(service) == DEFAULT_PORTS[name], name
        base = next(v for k, v in service["environment"].items() if k.endswith("PUBLIC_BASE_URL"))
        assert base == f"http://127.0.0.1:{DEFAULT_PORTS[name]}", name


# -- environment names against the settings classes ----------------------------------------------


def test_every_variable_names_a_real_setting(compose: dict[str, Any]) -> None:
    """A renamed or removed setting breaks this test instead of being silently ignored."""
    for name, service in intyg_services(compose).items():
        settings = settings_class(service)
        prefix = str(settings.model_config["env_prefix"])
        secrets = set(settings.secret_fields())  # type: ignore[attr-defined]
        for variable in service["environment"]:
            assert variable.startswith(prefix), (name, variable)
            field = variable.removeprefix(prefix).lower()
            if field.endswith("_file") and field.removesuffix("_file") in secrets:
                field = field.removesuffix("_file")
            assert field in settings.model_fields, (name, variable)


def test_secrets_come_from_files_never_from_variables(compose: dict[str, Any]) -> None:
    for name, service in intyg_services(compose).items():
        settings = settings_class(service)
        prefix = str(settings.model_config["env_prefix"])
        for field in settings.secret_fields():  # type: ignore[attr-defined]
            assert f"{prefix}{field.upper()}" not in service["environment"], (name, field)


def _container_environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's variables with /run/secrets/<name> pointing at deploy/dev-secrets."""
    return {
        variable: str(DEV_SECRETS / value.removeprefix(SECRETS_PREFIX))
        if value.startswith(SECRETS_PREFIX)
        else value
        for variable, value in service["environment"].items()
    }


def test_every_service_environment_is_accepted_by_its_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values parse (JSON lists, secrets in files) and pass the settings' own rules."""
    for variable in list(os.environ):
        if variable.startswith("INTYG_"):
            monkeypatch.delenv(variable)
    for name, service in intyg_services(compose).items():
        with monkeypatch.context() as scoped:
            for variable, value in _container_environment(service).items():
                scoped.setenv(variable, value)
            try:
                settings = settings_class(service)()
            except ValidationError as exc:
                pytest.fail(f"{name}: {exc}")
            for field in settings.secret_fields():  # type: ignore[attr-defined]
                file_variable = f"{settings.model_config['env_prefix']}{field.upper()}_FILE"
                if file_variable in service["environment"]:
                    assert getattr(settings, field) not in (None, ()), (name, field)


# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_are_declared_mounted_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["secrets"])
    files = secret_files(compose)
    assert all(path.is_file() for path in files.values()), files
    used: set[str] = set()
    for name, service in compose["services"].items():
        mounted = set(service.get("secrets", []))
        assert mounted <= declared, name
        referenced = {
            part.removeprefix(SECRETS_PREFIX)
            for value in service.get("environment", {}).values()
            for part in str(value).split()
            if part.startswith(SECRETS_PREFIX)
        }
        assert referenced == mounted, name  # nothing mounted for nothing, nothing missing
        used |= mounted
    assert used == declared


def test_dev_secrets_are_what_the_generator_makes(compose: dict[str, Any]) -> None:
    """deploy/dev-secrets is deploy/make_secrets.py's output: same files, same shapes."""
    fresh = container_secrets()
    on_disk = {path.name for path in DEV_SECRETS.iterdir() if path.name != "README.md"}
    assert on_disk == set(fresh)
    assert set(compose["secrets"]) == set(fresh) - {"dev-secrets.json"}
    for name, text in fresh.items():
        kept = (DEV_SECRETS / name).read_text(encoding="utf-8")
        if text.lstrip().startswith(("{", "[")):
            assert _shape(json.loads(kept)) == _shape(json.loads(text)), name


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def _secret(name: str) -> str:
    return (DEV_SECRETS / name).read_text(encoding="utf-8").strip()


def test_dev_secrets_agree_with_each_other() -> None:
    demo = json.loads(_secret("dev-secrets.json"))
    clients = {c["client_id"]: c for c in json.loads(_secret("eid-clients"))}
    for client in ("issuer-af", "issuer-myh", "wallet"):
        config = json.loads(_secret(f"{client}-eid"))
        assert config["client_secret"] == clients[client]["client_secret"]
        assert config["client_secret"] == demo["eid_clients"][client]
        assert config["redirect_uri"] in clients[client]["redirect_uris"]
        assert config["redirect_uri"] == f"http://127.0.0.1:{DEFAULT_PORTS[client]}/login/callback"
    for agency in ("issuer-af", "issuer-myh"):
        assert _secret(f"{agency}-backoffice-secret") == demo["backoffice"][agency]
    assert _secret("verifier-api-client-secret") == demo["employer_api"]["secret"]
    assert _secret("verifier-page-user-password") == demo["employer_page"]["password"]
    for name in DATABASE_SERVICES:
        role = f"intyg_{name.replace('-', '_')}"
        url = _secret(f"{name}-database-url")
        assert url.startswith(f"postgresql://{role}:") and url.endswith(f"@127.0.0.1:5432/{role}")
        MasterKey.from_config(_secret(f"{name}-master-key"))
    assert SecretStr(_secret("eid-signing-key"))


def test_postgres_creates_a_database_per_service_from_the_same_urls(
    compose: dict[str, Any],
) -> None:
    postgres = compose["services"]["postgres"]
    files = postgres["environment"]["INTYG_DATABASE_URL_FILES"].split()
    assert files == [f"{SECRETS_PREFIX}{name}-database-url" for name in DATABASE_SERVICES]
    init = next(v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v)
    assert init.split(":")[0] == "./deploy/postgres/init-databases.sh"
    assert os.access(INIT_SCRIPT, os.X_OK)
    shell = shutil.which("sh")
    assert shell is not None
    assert subprocess.run([shell, "-n", str(INIT_SCRIPT)], timeout=30).returncode == 0


# -- the Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_builds_one_non_root_image_with_the_intyg_entrypoint() -> None:
    instructions = dockerfile_instructions()
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    keywords = [keyword for keyword, _ in final]
    user = [args for keyword, args in final if keyword == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert exec_form(dict(final)["ENTRYPOINT"]) == ["intyg"]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    assert "INTYG_SERVE_HOST=0.0.0.0" in env  # inside the container: every interface
    assert "COPY" in keywords and "--from=build" in dict(final)["COPY"]


def test_dockerfile_copies_every_package_and_the_context_lets_them_in() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copies = [args.split() for keyword, args in dockerfile_instructions() if keyword == "COPY"]
    sources = {
        part.rstrip("/") for args in copies if not args[0].startswith("--") for part in args[:-1]
    }
    assert packages <= sources
    assert {"pyproject.toml", "constraints.txt", "README.md"} <= sources
    # intyg/_schemas is a symbolic link into schemas/: the image needs its target too.
    links = {p.resolve().relative_to(ROOT).parts[0] for p in ROOT.glob("intyg/*") if p.is_symlink()}
    assert links and links <= sources
    allowed = {
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    assert sources <= allowed
    assert all((ROOT / source).exists() for source in sources)
    run = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert "-c constraints.txt" in run  # the pinned versions


def test_compose_commands_are_intyg_commands(compose: dict[str, Any]) -> None:
    commands = {
        info.name or (info.callback.__name__ if info.callback else "")
        for info in app.registered_commands
    }
    for name, service in intyg_services(compose).items():
        assert service["build"] == "." and service["image"] == "intyg:dev", name
        command = service["command"]
        assert command[0] in commands, name
        if command[0] == "serve":
            assert command[1] in SERVE_FACTORIES, name
