"""Fault scenarios (issue 7 item 4; security.md L05-L24): each starts the system
(:class:`~tests.reliability.system.System`), hurts it in one scripted way, checks what the
people involved saw, then runs the invariant checker, and returns a :class:`Row` for
docs/reliability.md. ``bench/faults/run.py NAME`` runs one and prints its row; the short
ones are also tests (tests/reliability/test_faults.py).

The scripted actors are those of ``intyg demo`` (intyg/demo.py): Anna on the wallet's pages,
Arbetsförmedlingen's back office, the employer on the verifier API.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from intyg import demo
from intyg.web import db
from intyg.web.faults import FAULT_VARIABLE
from intyg.web.invariants import Report

from .system import System, free_ports

TIMEOUT = 60.0
#: Debian's libfaketime (``apt-get install faketime``; .ci/run installs it).
FAKETIME_LIBRARY = next(
    (
        path
        for path in Path("/usr/lib").glob("*-linux-gnu/faketime/libfaketimeMT.so.1")
        if path.exists()
    ),
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),
)
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
RUN = ".venv/bin/python bench/faults/run.py"


@dataclass
class Row:
    """One line of the reliability table, and whether the scenario's criteria held."""

    scenario: str
    done: str
    figures: str
    report: Report
    command: str
    expected: bool

    @property
    def ok(self) -> bool:
        return self.expected and self.report.ok

    def markdown(self) -> str:
        checked = ", ".join(f"{o.invariant} {o.checked}" for o in self.report.outcomes.values())
        verdict = "clean" if self.report.ok else f"{self.report.violation_count} violation(s)"
        return (
            f"| {self.scenario} | {self.done} | {self.figures} | {verdict} ({checked}) "
            f"| `{self.command}` |"
        )


# -- the actors ------------------------------------------------------------------------------


class Journey:
    """Anna, the AF back office and the employer against one running system."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.endpoints = demo.Endpoints(
            system.url("eid"), system.url("issuer-af"), system.url("issuer-myh"),
            system.url("wallet"), system.url("verifier"),
        )  # fmt: skip
        self.person = demo.Person(self.endpoints)
        self.person.browser.timeout = httpx.Timeout(TIMEOUT)
        self.af = demo.Agency(self.endpoints.issuer_af, system.secrets["backoffice"]["issuer-af"])
        api = system.secrets["employer_api"]
        self.employer = demo.Employer(self.endpoints.verifier, api["client_id"], api["secret"])
        self.record: dict[str, Any] | None = None

    def log_in(self) -> None:
        self.person.log_in_to_wallet()

    def offer(self) -> dict[str, Any]:
        if self.record is None:
            self.record = self.af.record(
                "/registrations",
                {**demo.PERSON, "registered": True, "registered_since": "2025-09-01",
                 "registration_category": {"code": "11", "label": "Öppet arbetslös"}},
                method="PUT",
            )  # fmt: skip
        return self.af.offer(self.record["person"], self.record["record_id"])

    def accept(self, offer: dict[str, Any] | None = None) -> httpx.Response:
        """Paste the offer link, accept with the tx_code; the wallet's last answer."""
        offer = offer or self.offer()
        browser, wallet = self.person.browser, self.endpoints.wallet
        add = demo.form_with(browser.get(wallet + "/add"), r"/add$")
        shown = browser.post(add.action, data={**add.fields, "link": offer["link"]})
        accept = demo.form_with(shown, r"/accept$")
        accept.fields["tx_code"] = offer["tx_code"]
        return browser.post(accept.action, data=accept.fields)

    def ask(self, template: str = "registration_certificate") -> dict[str, Any]:
        return self.employer.ask(template)

    def approve(self, transaction: dict[str, Any]) -> httpx.Response:
        query = urlsplit(transaction["request_link"]).query
        screen = self.person.browser.get(self.endpoints.wallet + "/authorize?" + query)
        approve = demo.form_with(screen, r"/approve$")
        return self.person.browser.post(approve.action, data=approve.fields)

    def result(self, transaction: dict[str, Any]) -> dict[str, Any]:
        return self.employer.result(transaction["transaction_id"])

    def present(self, template: str = "registration_certificate") -> str:
        """A whole presentation; the verifier's status for it."""
        transaction = self.ask(template)
        self.approve(transaction)
        return str(self.result(transaction)["status"])


def _count(url: str, query: str) -> int:
    engine = db.create_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(query)).scalar() or 0)
    finally:
        engine.dispose()


def _states(url: str, query: str) -> dict[str, int]:
    engine = db.create_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return {str(k): int(v) for k, v in connection.execute(sa.text(query)).all()}
    finally:
        engine.dispose()


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir or Path(tempfile.mkdtemp(prefix="intyg-fault-")) / "data"


# -- L06: the issuer killed while issuing -----------------------------------------------------


def issuer_crash(point: str, data_dir: Path | None = None) -> Row:
    """SIGKILL inside ``/credential``: after signing, before the commit (``signed``), or
    after the commit, before the reply (``committed``). The wallet must store nothing and
    mark its keys failed; the issuer must have recorded either nothing or everything it
    signed (I1); a new offer then works."""
    fault = {"issuer-af": {FAULT_VARIABLE: f"issuer.credential.{point}"}}
    with System(_data_dir(data_dir), extra_env=fault) as system:
        journey = Journey(system)
        journey.log_in()
        issuer = system.sources().issuers["issuer-af"]
        before = _count(issuer, "SELECT count(*) FROM issuances")
        crashed = journey.accept()
        code = system.wait_exit("issuer-af", 30)
        recorded = _count(issuer, "SELECT count(*) FROM issuances") - before
        keys = _states(
            system.sources().wallet or "", "SELECT state, count(*) FROM holder_keys GROUP BY state"
        )
        system.restart("issuer-af")
        again = journey.accept()
        verified = journey.present()
        report = system.check()
    expected_rows = 0 if point == "signed" else 5
    return Row(
        f"L06 issuer killed: {point}",
        f"`INTYG_FAULT=issuer.credential.{point}`: SIGKILL in the first credential request of "
        "an offer; restart; a new offer; a presentation",
        f"issuer exit {code}; wallet page {crashed.status_code}; issuance rows at the crash "
        f"+{recorded} (expected +{expected_rows}); wallet keys {keys}; retry: page "
        f"{again.status_code}, presentation {verified}",
        report,
        f"{RUN} issuer-kill-{point}",
        expected=code == -signal.SIGKILL
        and crashed.status_code == 502
        and recorded == expected_rows
        and keys.get("proof_sent", 0) == 0
        and again.status_code == 200
        and verified == "verified",
    )


# -- L09: the wallet killed between consent and direct_post -------------------------------------


def wallet_crash_after_consent(data_dir: Path | None = None) -> Row:
    """SIGKILL after the consent commit, before the ``direct_post``: the consent stays
    ``pending``, nothing reached the verifier, approving again is refused (409), and a new
    request from the employer works (I3, I4)."""
    fault = {"wallet": {FAULT_VARIABLE: "wallet.presentation.consented"}}
    with System(_data_dir(data_dir), extra_env=fault) as system:
        journey = Journey(system)
        journey.log_in()
        stored = journey.accept()
        transaction = journey.ask()
        query = urlsplit(transaction["request_link"]).query
        screen = journey.person.browser.get(journey.endpoints.wallet + "/authorize?" + query)
        approve = demo.form_with(screen, r"/approve$")
        try:
            journey.person.browser.post(approve.action, data=approve.fields)
            lost = "an answer"
        except httpx.HTTPError as exc:
            lost = type(exc).__name__
        code = system.wait_exit("wallet", 30)
        system.restart("wallet", {})
        at_verifier = journey.result(transaction)["status"]
        again = journey.person.browser.post(approve.action, data=approve.fields)
        if again.status_code in (401, 403) or "login" in str(again.url):
            journey.log_in()
            again = journey.person.browser.post(approve.action, data=approve.fields)
        wallet = system.sources().wallet or ""
        delivery = _states(
            wallet, "SELECT delivery_status, count(*) FROM consent_records WHERE kind = 'consent' "
            "GROUP BY delivery_status",
        )  # fmt: skip
        verified = journey.present()
        report = system.check()
    return Row(
        "L09 wallet killed after consent",
        "`INTYG_FAULT=wallet.presentation.consented`: SIGKILL after the consent commit, "
        "before `direct_post`; restart; approve again; a new request",
        f"wallet exit {code}; the person's request: {lost}; verifier status {at_verifier}; "
        f"approve again: {again.status_code}; consents by delivery {delivery}; new request "
        f"{verified}",
        report,
        f"{RUN} wallet-kill-consented",
        expected=stored.status_code == 200
        and code == -signal.SIGKILL
        and at_verifier == "pending"
        and again.status_code == 409
        and delivery.get("pending") == 1
        and verified == "verified",
    )


def wallet_crash_after_proof(data_dir: Path | None = None) -> Row:
    """SIGKILL after the wallet marked its holder keys as sent in proofs (L08): after the
    restart the interrupted issuance is ``failed`` and no key is left ``proof_sent`` (I5);
    a new offer works."""
    fault = {"wallet": {FAULT_VARIABLE: "wallet.issuance.proof_sent"}}
    with System(_data_dir(data_dir), extra_env=fault) as system:
        journey = Journey(system)
        journey.log_in()
        try:
            lost = f"page {journey.accept().status_code}"
        except httpx.HTTPError as exc:
            lost = type(exc).__name__
        code = system.wait_exit("wallet", 30)
        wallet = system.sources().wallet or ""
        keys = "SELECT state, count(*) FROM holder_keys GROUP BY state"
        at_crash = _states(wallet, keys)
        system.restart("wallet", {})
        after = _states(wallet, keys)
        sessions = _states(wallet, "SELECT state, count(*) FROM issuance_sessions GROUP BY state")
        journey.log_in()
        again = journey.accept()
        verified = journey.present()
        report = system.check()
    return Row(
        "L08 wallet killed after the proofs",
        "`INTYG_FAULT=wallet.issuance.proof_sent`: SIGKILL once the holder keys are marked as "
        "sent; restart; a new offer; a presentation",
        f"wallet exit {code}; the person's request: {lost}; keys at the crash {at_crash}, "
        f"after the restart {after}; issuance sessions {sessions}; new offer: page "
        f"{again.status_code}, presentation {verified}",
        report,
        f"{RUN} wallet-kill-proof-sent",
        expected=code == -signal.SIGKILL
        and at_crash.get("proof_sent") == 5
        and "proof_sent" not in after
        and sessions.get("failed") == 1
        and again.status_code == 200
        and verified == "verified",
    )


# -- L11: the status list host down or hanging during verification -----------------------------


def status_list_unreachable(mode: str, data_dir: Path | None = None) -> Row:
    """The issuer that serves the status list is ``down`` (killed: connection refused) or
    ``hang`` (SIGSTOP: the connection is accepted, nothing answers) when the verifier first
    needs the list: the presentation is rejected (fail closed) within the verifier's
    outbound deadline; once the issuer is back, the next presentation is verified."""
    with System(_data_dir(data_dir)) as system:
        journey = Journey(system)
        journey.log_in()
        stored = journey.accept()
        pid = system.pid("issuer-af")
        if mode == "down":
            system.kill("issuer-af")
        else:
            os.kill(pid, signal.SIGSTOP)
        try:
            transaction = journey.ask()
            started = time.monotonic()
            answer = journey.approve(transaction)
            seconds = time.monotonic() - started
            view = journey.result(transaction)
        finally:
            if mode == "down":
                system.restart("issuer-af")
            else:
                os.kill(pid, signal.SIGCONT)
        checks = {c["name"]: c for c in (view.get("result") or {}).get("checks", [])}
        reason = (checks.get("status") or {}).get("reason")
        verified = journey.present()
        report = system.check()
    return Row(
        f"L11 status list host {mode}",
        ("issuer killed" if mode == "down" else "issuer stopped (SIGSTOP): connects, never answers")
        + " while the verifier needs its status list; then back",
        f"presentation answered in {seconds:.1f} s: {view['status']} (status check: {reason}); "
        f"wallet page {answer.status_code}; after recovery {verified}",
        report,
        f"{RUN} status-list-{mode}",
        expected=stored.status_code == 200
        and view["status"] == "rejected"
        and (reason or "").startswith("status unknown")
        and verified == "verified",
    )


# -- L13: a dependency that hangs, other flows unaffected -------------------------------------


def hanging_dependency(data_dir: Path | None = None, people: int = 3) -> Row:
    """The MYH issuer hangs (SIGSTOP) while one person pastes a MYH offer link (the wallet
    fetches the offer from MYH) and others receive and present AF credentials: the MYH fetch
    times out with a clean error, the others finish as fast as before."""
    with System(_data_dir(data_dir)) as system:
        others = [Journey(system) for _ in range(people)]
        for journey in others:
            journey.log_in()
        _timed_rounds(others)  # warm-up: first logins, caches
        baseline = _timed_rounds(others)
        myh = demo.Agency(system.url("issuer-myh"), system.secrets["backoffice"]["issuer-myh"])
        award = myh.record("/awards", {**demo.PERSON, "qualification_id": demo.QUALIFICATION_ID,
                                       "awarded_on": "2025-06-13"})  # fmt: skip
        offer = myh.offer(award["person"], award["record_id"])
        victim = Journey(system)
        victim.log_in()
        pid = system.pid("issuer-myh")
        os.kill(pid, signal.SIGSTOP)
        try:
            with _background(lambda: _paste(victim, offer["link"])) as hung:
                during = _timed_rounds(others)
            answer, waited = hung()
        finally:
            os.kill(pid, signal.SIGCONT)
        report = system.check()
    text = demo.page_text(answer.text).replace("\n", " ")[:120] if answer is not None else "-"
    return Row(
        "L13 dependency hangs",
        f"MYH issuer stopped (SIGSTOP) while one person adds a MYH offer and {people} others "
        "each receive and present AF credentials",
        f"MYH offer fetch gave up after {waited:.1f} s: page {getattr(answer, 'status_code', '-')} "
        f"({text}); others' round p50 {baseline:.1f} s before, {during:.1f} s during",
        report,
        f"{RUN} hang",
        expected=answer is not None
        and answer.status_code == 400
        and waited < 30
        and during < baseline + 5,
    )


def _paste(journey: Journey, link: str) -> httpx.Response:
    """The person pastes an offer link in the wallet (the wallet then fetches the offer)."""
    browser = journey.person.browser
    add = demo.form_with(browser.get(journey.endpoints.wallet + "/add"), r"/add$")
    return browser.post(add.action, data={**add.fields, "link": link})


def _timed_rounds(journeys: list[Journey]) -> float:
    """Median seconds of one issuance + presentation per person, all at once."""

    def one(journey: Journey) -> float:
        started = time.monotonic()
        if journey.accept().status_code != 200 or journey.present() != "verified":
            return float("inf")
        return time.monotonic() - started

    async def all_of() -> list[float]:
        return list(await asyncio.gather(*(asyncio.to_thread(one, j) for j in journeys)))

    times = sorted(asyncio.run(all_of()))
    return times[len(times) // 2]


@contextmanager
def _background(work: Callable[[], Any]) -> Iterator[Callable[[], tuple[Any, float]]]:
    """Run ``work`` in a thread; the yielded function joins it -> (result or None, seconds)."""
    import threading

    box: dict[str, Any] = {}
    started = time.monotonic()

    def run() -> None:
        try:
            box["result"] = work()
        except Exception as exc:
            box["error"] = exc
        box["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> tuple[Any, float]:
        thread.join(TIMEOUT * 2)
        return box.get("result"), box.get("seconds", time.monotonic() - started)

    yield join


# -- L14: clock skew --------------------------------------------------------------------------


def _skewed(offset: str) -> dict[str, str]:
    return {
        "LD_PRELOAD": str(FAKETIME_LIBRARY),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }


def clock_skew(data_dir: Path | None = None) -> Row:
    """libfaketime per process. Within leeway (issuer +30 s, wallet -30 s, verifier +20 s):
    issuance and presentation work. Beyond (wallet -1 h): refused with a clear protocol
    error, nothing stored. The clocks put right: everything works again."""
    if not FAKETIME_LIBRARY.exists():
        raise RuntimeError("apt-get install faketime (libfaketime) first")
    with System(_data_dir(data_dir)) as system:
        journey = Journey(system)
        within = {"issuer-af": "+30", "wallet": "-30", "verifier": "+20"}
        for name, offset in within.items():
            system.restart(name, _skewed(offset))
        journey.log_in()
        small = (journey.accept().status_code, journey.present())
        system.restart("wallet", _skewed("-3600"))
        login = "ok"
        try:
            journey.log_in()
        except demo.DemoError as exc:
            login = " ".join(str(exc).split())[:100]
        wallet = system.sources().wallet or ""
        credentials_before = _count(wallet, "SELECT count(*) FROM credentials")
        issuance = journey.accept()
        issued_text = demo.page_text(issuance.text).replace("\n", " ")[:140]
        transaction = journey.ask()
        query = urlsplit(transaction["request_link"]).query
        screen = journey.person.browser.get(journey.endpoints.wallet + "/authorize?" + query)
        screen_text = demo.page_text(screen.text).replace("\n", " ")[:140]
        presented = journey.result(transaction)
        credentials_after = _count(wallet, "SELECT count(*) FROM credentials")
        for name in within:
            system.restart(name, {})
        journey.log_in()
        repaired = (journey.accept().status_code, journey.present())
        report = system.check()
    return Row(
        "L14 clock skew",
        "libfaketime: issuer +30 s, wallet -30 s, verifier +20 s; then wallet -1 h; then none",
        f"within leeway: issuance page {small[0]}, presentation {small[1]}; wallet -1 h: login "
        f"{login}; issuance page {issuance.status_code} ({issued_text}), credentials stored "
        f"+{credentials_after - credentials_before}; the verifier's request: page "
        f"{screen.status_code} ({screen_text}), verifier status {presented['status']}; clocks "
        f"right again: {repaired[0]}, {repaired[1]}",
        report,
        f"{RUN} clock-skew",
        expected=small == (200, "verified")
        and issuance.status_code in (400, 502)
        and credentials_after == credentials_before
        and screen.status_code == 400
        and presented["status"] == "pending"
        and repaired == (200, "verified"),
    )


# -- L16: issuer key rotation with credentials outstanding ------------------------------------


def key_rotation(data_dir: Path | None = None) -> Row:
    """A credential signed with key 1; the AF issuer rotates to key 2 (``KeyRing.rotate``);
    new credentials carry key 2; the old credential still verifies (key 1 published, its
    certificate valid); ``retire_expired`` keeps key 1 while its credentials are valid."""
    from intyg.web import embedded
    from issuer.app import build_context
    from issuer.settings import IssuerSettings

    env = {"issuer-af": {"INTYG_ISSUER_KEY_CACHE_SECONDS": "0"}}
    with System(_data_dir(data_dir), extra_env=env) as system:
        journey = Journey(system)
        journey.log_in()
        journey.accept()
        service = embedded.SERVICES_BY_NAME["issuer-af"]
        settings_env = embedded.service_environment(system.layout, service, system.secrets)
        with _environment(settings_env):
            context = build_context(IssuerSettings())
        old = _kids(system)
        new_kid = context.keys.rotate()
        old_verified = journey.present()  # only key-1 credentials in the wallet
        journey.accept()
        kids = _kids(system)
        new_verified = journey.present()
        retired = context.keys.retire_expired()
        jwks = httpx.get(system.url("issuer-af") + "/jwks.json", timeout=10).json()
        published = sorted(k["kid"] for k in jwks.get("keys", []))
        context.engine.dispose()
        report = system.check()
    return Row(
        "L16 issuer key rotation",
        "credential with key 1; rotate (`KeyRing.rotate`) while it is outstanding; present "
        "it; a new credential (key 2); present it; `retire_expired`",
        f"issuances by kid before {old}, after {kids}; presented after the rotation: old "
        f"{old_verified}, new {new_verified}; retired {retired or 'none'}; JWKS "
        f"{len(published)} keys",
        report,
        f"{RUN} key-rotation",
        expected=new_kid[:8] in kids
        and set(old) <= set(kids)
        and old_verified == new_verified == "verified"
        and retired == []
        and len(published) >= 2,
    )


def _kids(system: System) -> dict[str, int]:
    """Issuances per signing key (``kid`` shortened to 8 characters)."""
    issuer = system.sources().issuers["issuer-af"]
    counts = _states(issuer, "SELECT kid, count(*) FROM issuances GROUP BY kid")
    return {kid[:8]: n for kid, n in counts.items()}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- L18: junk direct_post flood ----------------------------------------------------------------

VERIFIER_TABLES = (
    "transactions", "results", "rejections", "disclosed_claims", "audit_log", "webhook_outbox",
)  # fmt: skip


def junk_flood(data_dir: Path | None = None, posts: int = 2000, concurrency: int = 50) -> Row:
    """``posts`` junk ``direct_post`` requests (random ``state``, random ``vp_token`` or a
    random ``response`` JWE) at ``concurrency``, while a real presentation runs: every junk
    post refused with 400, the real one verified, and the verifier stores nothing for junk."""
    with System(_data_dir(data_dir)) as system:
        journey = Journey(system)
        journey.log_in()
        journey.accept()
        verifier = system.sources().verifier or ""
        before = {t: _count(verifier, f"SELECT count(*) FROM {t}") for t in VERIFIER_TABLES}
        size_before = _sqlite_size(system, "verifier")
        alone, _ = asyncio.run(
            _flood(system.url("verifier") + "/response", posts // 2, concurrency)
        )
        size_alone = _sqlite_size(system, "verifier")
        with _background(journey.present) as real:
            statuses, seconds = asyncio.run(
                _flood(system.url("verifier") + "/response", posts, concurrency)
            )
        verified, _ = real()
        after = {t: _count(verifier, f"SELECT count(*) FROM {t}") for t in VERIFIER_TABLES}
        size_after = _sqlite_size(system, "verifier")
        report = system.check()
    grown = {t: after[t] - before[t] for t in VERIFIER_TABLES if after[t] != before[t]}
    # The real presentation adds one transaction, its result, claims, and audit entries.
    real_rows = {"transactions": 1, "results": 1, "disclosed_claims": 1, "audit_log": 2}
    return Row(
        "L18 junk direct_post flood",
        f"{posts // 2} junk posts (random state / vp_token / JWE), {concurrency} at a time; "
        f"then {posts} more during one real presentation",
        f"{posts / seconds:.0f} posts/s; statuses {statuses}; real presentation {verified}; "
        f"verifier rows grown {grown} (the real one: {real_rows}); database files "
        f"{size_before // 1024} KiB, after {posts // 2} junk posts alone {size_alone // 1024} "
        f"KiB, after the rest and the real one {size_after // 1024} KiB",
        report,
        f"{RUN} junk-flood",
        expected=set(statuses) == set(alone) == {400}
        and size_alone == size_before
        and verified == "verified"
        and grown == real_rows,
    )


async def _flood(url: str, posts: int, concurrency: int) -> tuple[dict[int, int], float]:
    gate = asyncio.Semaphore(concurrency)
    statuses: dict[int, int] = {}

    async def one(client: httpx.AsyncClient, n: int) -> None:
        if n % 2:
            form = {"state": secrets.token_urlsafe(32),
                    "vp_token": json.dumps({"q": [secrets.token_urlsafe(200)]})}  # fmt: skip
        else:
            form = {"response": ".".join(secrets.token_urlsafe(40) for _ in range(5))}
        async with gate:
            response = await client.post(url, data=form)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.monotonic()
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        await asyncio.gather(*(one(client, n) for n in range(posts)))
    return statuses, time.monotonic() - started


def _sqlite_size(system: System, name: str) -> int:
    folder = system.layout.folder(name)
    return sum(p.stat().st_size for p in folder.glob("*.sqlite3*"))


# -- L24: compression and JSON bombs, 10 at a time ------------------------------------------------


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def bombs(data_dir: Path | None = None, at_a_time: int = 10) -> Row:
    """Bombs, ``at_a_time`` concurrently per kind, at the issuer, wallet and verifier: JSON
    nested 10,000 deep and a number of 200,000 digits (both under the body limits, so the
    parser meets them), a gzip body inflating to 256 MiB
    (``Content-Encoding: gzip``), a zlib/deflate one, a 16 MiB form; every one refused
    (4xx), the services' peak memory (VmHWM) grows by little, a journey works meanwhile."""
    deep = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    digits = b'{"credential_configuration_id": ' + b"9" * 200_000 + b"}"
    zeros = bytes(256 * 1024 * 1024)
    gzipped = gzip.compress(zeros, compresslevel=9)
    deflated = zlib.compress(zeros, 9)
    del zeros
    big_form = b"link=" + b"A" * (16 * 1024 * 1024)
    with System(_data_dir(data_dir)) as system:
        journey = Journey(system)
        journey.log_in()
        api = system.secrets["employer_api"]
        employer = {"X-API-Key": f"{api['client_id']}:{api['secret']}"}
        json_type = {"Content-Type": "application/json"}
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        kinds = {
            "deep JSON -> issuer /credential": (
                "issuer-af", "/credential", deep, {**json_type, "Authorization": "Bearer x"}),
            "deep JSON -> verifier API": ("verifier", "/api/v1/transactions", deep,
                                          {**json_type, **employer}),
            "200,000-digit number -> issuer /credential": (
                "issuer-af", "/credential", digits, {**json_type, "Authorization": "Bearer x"}),
            "gzip 256 MiB -> verifier /response": (
                "verifier", "/response", gzipped, {**form_type, "Content-Encoding": "gzip"}),
            "deflate 256 MiB -> issuer /token": (
                "issuer-af", "/token", deflated, {**form_type, "Content-Encoding": "deflate"}),
            "16 MiB form -> wallet /add": ("wallet", "/add", big_form, form_type),
        }  # fmt: skip
        pids = {name: system.pid(name) for name in ("issuer-af", "wallet", "verifier")}
        peak_before = {name: _peak_rss_kib(pid) for name, pid in pids.items()}
        with _background(lambda: (journey.accept().status_code, journey.present())) as real:
            statuses = asyncio.run(_bombard(system, kinds, at_a_time))
        journey_result, _ = real()
        peak_after = {name: _peak_rss_kib(pid) for name, pid in pids.items()}
        alive = all(system.child(name).process.poll() is None for name in pids)
        report = system.check()
    growth = {name: (peak_after[name] - peak_before[name]) // 1024 for name in pids}
    # 0: the server answered 413 and closed while the upload was still going (cut off).
    refused = all(all(s == 0 or 400 <= s < 500 for s in seen) for seen in statuses.values())
    return Row(
        "L24 bombs, 10 at a time",
        f"{at_a_time} at once of each: " + "; ".join(kinds),
        f"statuses (0 = upload cut off) {statuses}; peak RSS growth MiB {growth}; services "
        f"alive {alive}; journey meanwhile {journey_result}",
        report,
        f"{RUN} bombs",
        expected=refused
        and alive
        and max(growth.values()) < 64
        and journey_result == (200, "verified"),
    )


async def _bombard(
    system: System, kinds: dict[str, tuple[str, str, bytes, dict[str, str]]], at_a_time: int
) -> dict[str, dict[int, int]]:
    seen: dict[str, dict[int, int]] = {}

    async def one(client: httpx.AsyncClient, label: str, spec: tuple[Any, ...]) -> None:
        service, path, body, headers = spec
        try:
            response = await client.post(system.url(service) + path, content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError:
            status = 0  # the server cut the upload off (counted, not a refusal code)
        counts = seen.setdefault(label, {})
        counts[status] = counts.get(status, 0) + 1

    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for label, spec in kinds.items():
            await asyncio.gather(*(one(client, label, spec) for _ in range(at_a_time)))
    return seen


# -- L05: PostgreSQL restarted mid-load -----------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL 15 instance of our own (initdb in a temporary folder, a free port, trust
    on loopback), so restarting it disturbs nobody else's databases."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="intyg-pg-"))
        self.port = free_ports(1)[0]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def _ctl(self, *args: str) -> None:
        self._as_postgres(
            str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-w", "-t", "60",
            "-l", str(self.folder / "server.log"), *args,
        )  # fmt: skip

    def start(self) -> PrivatePostgres:
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres(
            str(POSTGRES_BIN / "initdb"), "-D", str(self.folder / "data"), "-A", "trust",
            "-U", "postgres", "--no-sync",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "start")
        return self

    def restart(self) -> float:
        started = time.monotonic()
        self._ctl("-m", "fast", "restart")
        return time.monotonic() - started

    def stop(self) -> None:
        try:
            self._ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _accepting(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def postgres_restart(
    data_dir: Path | None = None, wallets: int = 50, seconds: float = 60.0, at: float = 20.0
) -> Row:
    """bench/load.py's flows on PostgreSQL (a private instance); ``at`` seconds into the
    measured window the server is restarted (``pg_ctl restart -m fast``: every connection
    cut). Requests caught by it end in a retriable 503 or wait (workflow patience); the
    invariants must hold."""
    from bench.load import Endpoints, percentiles, postgres_prefix, run_load
    from eid.persons import load_person

    people = [load_person(n) for n in range(1, wallets + 1)]
    with PrivatePostgres() as server, postgres_prefix(server.url) as prefix:
        extra = {"eid": {"INTYG_EID_DEV_LOAD_PERSONS": str(wallets)}}
        with System(_data_dir(data_dir), postgres_url=prefix, extra_env=extra) as system:
            endpoints = Endpoints(
                system.url("eid"), system.url("issuer-af"), system.url("wallet"),
                system.url("verifier"),
            )  # fmt: skip
            restart: dict[str, float] = {}

            async def hurt() -> None:
                await asyncio.sleep(at)
                restart["seconds"] = await asyncio.to_thread(server.restart)

            stats, _elapsed, ready = asyncio.run(
                run_load(endpoints, system.secrets, people, seconds, during=hurt)
            )
        alive = _accepting(server.port)
        report = system.check()
    done = {flow: len(values) for flow, values in stats.flows.items()}
    p50, p95, p99 = percentiles(stats.flows["issuance"] + stats.flows["presentation"])
    kinds = {kind: f"{n} x {stats.examples[kind][:90]}" for kind, n in stats.errors.most_common(4)}
    return Row(
        "L05 PostgreSQL restarted mid-load",
        f"{ready} wallets x {seconds:.0f} s (bench/load.py flows), `pg_ctl restart -m fast` "
        f"after {at:.0f} s",
        f"restart took {restart.get('seconds', 0):.1f} s; {done['issuance']} issuances, "
        f"{done['presentation']} presentations; flow p50/p95/p99 {p50:.1f}/{p95:.1f}/{p99:.1f} "
        f"s; 503+Retry-After {stats.retried_503}; errors {stats.error_count} {kinds or ''}; "
        f"server up after {alive}",
        report,
        f"{RUN} postgres-restart",
        expected=alive and "seconds" in restart and stats.error_count == 0,
    )


SCENARIOS: dict[str, Callable[[], Row]] = {
    "issuer-kill-signed": lambda: issuer_crash("signed"),
    "issuer-kill-committed": lambda: issuer_crash("committed"),
    "wallet-kill-proof-sent": wallet_crash_after_proof,
    "wallet-kill-consented": wallet_crash_after_consent,
    "status-list-down": lambda: status_list_unreachable("down"),
    "status-list-hang": lambda: status_list_unreachable("hang"),
    "hang": hanging_dependency,
    "clock-skew": clock_skew,
    "key-rotation": key_rotation,
    "junk-flood": junk_flood,
    "bombs": bombs,
    "postgres-restart": postgres_restart,
}
