"""Export, import and account deletion (issue 4 items 6-7): a real credential from the AF
issuer and a real consent at the verifier, exported with a passphrase, the account deleted,
the same person logs in again and imports the file; every refusal (wrong passphrase,
tampered chain, tampered credential, another person's file) and isolation between people."""

from __future__ import annotations

import copy
import json
import re

import httpx
import pytest
import sqlalchemy as sa

from intyg.web import db
from wallet import backup, consents
from wallet.accounts import account_for
from wallet.models import (
    Account,
    ConsentKey,
    ConsentRecord,
    CredentialInstance,
    HolderKey,
    PresentationSession,
    WalletCredential,
)

from .conftest import ANNA, World, csrf, receive_and_authorize

PASSPHRASE = "correct horse battery"


def _consent(world: World, browser: httpx.Client) -> None:
    """Anna: one credential, one consent delivered to the real verifier."""
    consent_path, _ = receive_and_authorize(world, browser)
    base = world.services.wallet_base
    screen = browser.get(base + consent_path)
    approve = re.search(r'action="(/presentations/[^"]+/approve)"', screen.text)
    assert approve
    done = browser.post(base + approve[1], data={"csrf_token": csrf(screen.text)})
    assert done.status_code == 200, done.text


def _account(world: World, key_of: str = "anna") -> int:
    ctx = world.services.wallet
    with db.session(ctx.engine, write=False) as unit:
        ids = list(unit.scalars(sa.select(Account.id).order_by(Account.id)))
    return ids[0 if key_of == "anna" else 1]  # type: ignore[no-any-return]


def _counts(world: World, account_id: int) -> dict[str, int]:
    ctx = world.services.wallet
    tables = (
        WalletCredential,
        CredentialInstance,
        HolderKey,
        ConsentRecord,
        ConsentKey,
        PresentationSession,
    )
    with db.session(ctx.engine, write=False) as unit:
        return {
            t.__tablename__: unit.scalar(  # type: ignore[attr-defined]
                sa.select(sa.func.count()).where(t.account_id == account_id)  # type: ignore[attr-defined]
            )
            for t in tables
        }


def test_export_delete_login_again_import(world: World) -> None:
    services = world.services
    base = services.wallet_base
    browser = httpx.Client()
    _consent(world, browser)
    old_id = _account(world)
    before = _counts(world, old_id)
    # The AF offer carries both formats: two cards.
    assert before["credentials"] == 2 and before["consent_records"] == 2

    settings = browser.get(f"{base}/settings")
    assert settings.status_code == 200 and "Radera kontot" in settings.text
    token = csrf(settings.text)
    short = browser.post(
        f"{base}/settings/export", data={"csrf_token": token, "passphrase": "short"}
    )
    assert short.status_code == 400 and "at least 12" in short.text
    exported = browser.post(
        f"{base}/settings/export", data={"csrf_token": token, "passphrase": PASSPHRASE}
    )
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/json")
    assert "attachment" in exported.headers["content-disposition"]
    document = exported.json()
    text = exported.text
    assert document["format"] == backup.FORMAT
    assert ANNA not in text and '"d"' not in text  # no personal number, no key in clear
    assert [r["seq"] for r in document["consent_records"]] == [1, 2]
    assert document["consent_records"][0]["keys"]  # the consent key, for withdrawal
    instance = document["credentials"][_sd_jwt(document)]["instances"][0]
    assert instance["credential"].count("~") >= 2  # the issued SD-JWT with its disclosures

    # Deleting needs the CSRF token and the typed word.
    assert browser.post(f"{base}/settings/delete", data={"confirm": "RADERA"}).status_code == 403
    wrong = browser.post(f"{base}/settings/delete", data={"csrf_token": token, "confirm": "ja"})
    assert wrong.status_code == 400 and _counts(world, old_id) == before
    deleted = browser.post(
        f"{base}/settings/delete", data={"csrf_token": token, "confirm": "radera"}
    )
    assert deleted.status_code == 200 and "Kontot är raderat" in deleted.text
    assert set(_counts(world, old_id).values()) == {0}
    with db.session(services.wallet.engine, write=False) as unit:
        assert unit.get(Account, old_id) is None
    assert "Logga in" in browser.get(f"{base}/").text  # the session is gone

    # The same person logs in again: a new, empty account with the same account key.
    services.login(browser)
    page = browser.get(f"{base}/settings")
    token = csrf(page.text)
    bad = browser.post(
        f"{base}/settings/import",
        data={"csrf_token": token, "backup": text, "passphrase": "wrong passphrase!!"},
    )
    assert bad.status_code == 400 and "wrong passphrase" in bad.text
    done = browser.post(
        f"{base}/settings/import",
        data={"csrf_token": token, "backup": text, "passphrase": PASSPHRASE},
    )
    assert done.status_code == 200 and "Importerat: 2" in done.text, done.text
    new_id = _account(world)
    # (SQLite may reuse the id; the cookie binds the account key anyway.)
    after = _counts(world, new_id)
    assert after["credentials"] == 2 and after["consent_records"] == 2
    assert after["consent_keys"] == 1
    assert consents.verify_chain(services.wallet, new_id).ok
    home = browser.get(f"{base}/")
    cards = re.findall(r'href="/credentials/([^"]+)"', home.text)
    assert len(cards) == 2
    assert all(browser.get(f"{base}/credentials/{c}").status_code == 200 for c in cards)

    # Imported twice: refused, nothing changes.
    again = browser.post(
        f"{base}/settings/import",
        data={"csrf_token": token, "backup": text, "passphrase": PASSPHRASE},
    )
    assert again.status_code == 400 and _counts(world, new_id) == after

    # The imported consent key still signs the withdrawal the verifier accepts.
    consent_id = document["consent_records"][0]["record"]["record_id"]
    record_page = browser.get(f"{base}/consents/{consent_id}")
    withdrawn = browser.post(
        f"{base}/consents/{consent_id}/withdraw", data={"csrf_token": csrf(record_page.text)}
    )
    assert "Mottagaren har raderat uppgifterna" in withdrawn.text
    assert consents.verify_chain(services.wallet, new_id).ok


def _sd_jwt(document: dict) -> int:
    return next(i for i, c in enumerate(document["credentials"]) if c["format"] == "dc+sd-jwt")


def _fresh_account(world: World) -> tuple[dict, int]:
    """Anna's export, her account deleted, a new account with the same account key."""
    ctx = world.services.wallet
    browser = httpx.Client()
    _consent(world, browser)
    old_id = _account(world)
    document = backup.export_document(ctx, old_id, PASSPHRASE)
    key = document["account"]
    backup.delete_account(ctx, old_id)
    return document, account_for(ctx, key)


def _resealed(document: dict, change) -> str:  # type: ignore[no-untyped-def]
    """Someone who knows the passphrase edits the file and re-encrypts the keys."""
    keys = backup.open_keys(document, PASSPHRASE)
    changed = copy.deepcopy(document)
    del changed["keys"]
    change(changed)
    backup.seal_keys(changed, keys, PASSPHRASE)
    return json.dumps(changed)


def _refused(world: World, account_id: int, data: str, reason: str, passphrase: str = PASSPHRASE):  # type: ignore[no-untyped-def]
    with pytest.raises(backup.BackupError) as caught:
        backup.import_document(world.services.wallet, account_id, data, passphrase)
    assert caught.value.reason == reason, caught.value
    assert set(_counts(world, account_id).values()) == {0}  # all or nothing


def _flip_signature(text: str) -> str:
    jwt, _, rest = text.partition("~")
    head, payload, signature = jwt.split(".")
    other = "A" if signature[5] != "A" else "B"
    return f"{head}.{payload}.{signature[:5]}{other}{signature[6:]}~{rest}"


def test_import_refusals_leave_nothing(world: World) -> None:
    document, account_id = _fresh_account(world)
    plain = json.dumps(document)
    _refused(world, account_id, plain, "wrong_passphrase", "not the passphrase")
    _refused(world, account_id, "{not json", "malformed")
    _refused(world, account_id, json.dumps({**document, "format": "x"}), "malformed")

    # Changed without re-encrypting: the AAD (the whole file) no longer matches.
    edited = copy.deepcopy(document)
    edited["consent_records"][0]["record"]["purpose"] = {"sv": "annat", "en": "other"}
    _refused(world, account_id, json.dumps(edited), "wrong_passphrase")

    # Re-encrypted by someone with the passphrase: the chain and signatures still catch it.
    def purpose(d: dict) -> None:
        d["consent_records"][0]["record"]["purpose"] = {"sv": "annat", "en": "other"}

    def drop_first(d: dict) -> None:
        d["consent_records"] = d["consent_records"][1:]

    def status(d: dict) -> None:
        d["consent_records"][0]["delivery_status"] = "failed"

    def signature(d: dict) -> None:
        item = d["credentials"][_sd_jwt(d)]["instances"][0]
        item["credential"] = _flip_signature(item["credential"])

    def disclosure(d: dict) -> None:
        item = d["credentials"][_sd_jwt(d)]["instances"][0]
        jwt, *disclosures = item["credential"].rstrip("~").split("~")
        item["credential"] = "~".join([jwt, *disclosures[:-1], "WyJhIiwgImIiLCAiYyJd", ""])

    def vct(d: dict) -> None:
        d["credentials"][_sd_jwt(d)]["vct"] = "https://intyg.example/vct/other/1"

    def issuer(d: dict) -> None:
        d["credentials"][0]["credential_issuer"] = "https://evil.example"

    def key(d: dict) -> None:
        d["credentials"][0]["instances"][0]["key"] = d["consent_records"][0]["keys"][0] + "x"

    for change, reason in (
        (purpose, "chain"),
        (drop_first, "chain"),
        (status, "chain"),
        (signature, "credential"),
        (disclosure, "credential"),
        (vct, "credential"),
        (issuer, "credential"),
        (key, "credential"),
        (lambda d: d["credentials"][0].update(received_at="today"), "malformed"),
        (lambda d: d["consent_records"][0]["keys"].append({"not": "a thumbprint"}), "chain"),
        (lambda d: d["credentials"][0]["instances"][0].update(key=["x"]), "credential"),
    ):
        _refused(world, account_id, _resealed(document, change), reason)

    # The untouched file imports.
    imported = backup.import_document(world.services.wallet, account_id, plain, PASSPHRASE)
    assert imported.credentials == 2 and imported.consent_records == 2


def test_another_persons_export_is_refused_and_accounts_are_isolated(world: World) -> None:
    services = world.services
    ctx = services.wallet
    anna = httpx.Client()
    _consent(world, anna)
    erik = httpx.Client()
    services.login(erik, "erik")
    anna_id, erik_id = _account(world), _account(world, "erik")
    anna_file = json.dumps(backup.export_document(ctx, anna_id, PASSPHRASE))
    erik_file = backup.export_document(ctx, erik_id, PASSPHRASE)
    assert erik_file["credentials"] == [] and erik_file["consent_records"] == []
    assert anna_file.count(erik_file["account"]) == 0

    # Erik cannot import Anna's file, even with her passphrase, nor a copy naming him.
    _refused(world, erik_id, anna_file, "other_person")
    renamed = json.loads(anna_file)
    renamed["account"] = erik_file["account"]
    _refused(world, erik_id, json.dumps(renamed), "wrong_passphrase")
    relabelled = _resealed(json.loads(anna_file), lambda d: d.update(account=erik_file["account"]))
    _refused(world, erik_id, relabelled, "chain")  # the records name Anna's account

    page = erik.get(f"{services.wallet_base}/settings")
    via_page = erik.post(
        f"{services.wallet_base}/settings/import",
        data={"csrf_token": csrf(page.text), "backup": anna_file, "passphrase": PASSPHRASE},
    )
    assert via_page.status_code == 400 and "another person" in via_page.text

    # Erik deletes his account: Anna's is untouched.
    before = _counts(world, anna_id)
    deleted = erik.post(
        f"{services.wallet_base}/settings/delete",
        data={"csrf_token": csrf(page.text), "confirm": "DELETE"},
    )
    assert deleted.status_code == 200
    assert _counts(world, anna_id) == before and consents.verify_chain(ctx, anna_id).ok
