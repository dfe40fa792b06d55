"""The whole system as ``intyg up`` starts it, supervised here so a scenario can hurt it.

:class:`System` uses the embedded launcher's own pieces (``intyg.web.embedded``: layout,
files, environment, start order, sample records), on free loopback ports with a data
folder of the caller's, optionally on PostgreSQL (``postgres_url`` as
``INTYG_UP_POSTGRES_URL``). Unlike ``intyg up`` it does not stop everything when a service
dies: a fault scenario kills a service (SIGKILL), restarts it, or starts it with extra
environment (``INTYG_FAULT``, a clock offset, ...). :meth:`check` runs the invariant
checker over the system's databases.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intyg.web import embedded
from intyg.web.invariants import Report, Sources, check
from tests.system import free_ports

SERVICE_NAMES = tuple(service.name for service in embedded.SERVICES)


@dataclass
class _Supervisor(embedded.Supervisor):
    """The launcher's supervisor, with extra environment per service."""

    extra: dict[str, dict[str, str]] = field(default_factory=dict)

    def start(self, service: embedded.Service, env: Mapping[str, str]) -> embedded.Child:
        return super().start(service, {**env, **self.extra.get(service.name, {})})


class System:
    """The five services of ``intyg up`` on free ports; ``extra_env`` per service name."""

    def __init__(
        self,
        data_dir: Path,
        *,
        postgres_url: str | None = None,
        extra_env: Mapping[str, Mapping[str, str]] | None = None,
        echo: Callable[[str], None] = lambda line: None,
    ) -> None:
        ports = dict(zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True))
        self.layout = embedded.Layout(data_dir.resolve(), ports, postgres_url)
        self.supervisor = _Supervisor(
            self.layout, echo, extra={k: dict(v) for k, v in (extra_env or {}).items()}
        )
        self.secrets: dict[str, Any] = {}

    def url(self, name: str) -> str:
        return self.layout.url(name)

    def start(self) -> System:
        embedded.check_ports(self.layout)
        embedded.ensure_databases(self.layout)
        self.secrets = embedded.ensure_files(self.layout)
        try:
            embedded.start_all(self.supervisor, self.layout, self.secrets)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> System:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def child(self, name: str) -> embedded.Child:
        return next(c for c in self.supervisor.children if c.service.name == name)

    def pid(self, name: str) -> int:
        return self.child(name).process.pid

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal one service's process group; -> its exit code once it is gone."""
        child = self.child(name)
        try:
            os.killpg(child.process.pid, sig)
        except ProcessLookupError:
            pass
        return child.process.wait(30)

    def wait_exit(self, name: str, timeout: float) -> int:
        """A service that is meant to die by itself (a fault point): its exit code."""
        return self.child(name).process.wait(timeout)

    def restart(self, name: str, extra_env: Mapping[str, str] | None = None) -> float:
        """Start a stopped or dead service again (same ports, data, databases); -> seconds
        until ready. ``extra_env`` replaces the service's extra environment."""
        child = self.child(name)
        if child.process.poll() is None:
            self.kill(name, signal.SIGINT)
        child.log.close()
        self.supervisor.children.remove(child)
        self.supervisor.extra[name] = dict(extra_env or {})
        service = embedded.SERVICES_BY_NAME[name]
        env = embedded.service_environment(self.layout, service, self.secrets)
        started = self.supervisor.start(service, env)
        return self.supervisor.wait_ready(started)

    def sources(self) -> Sources:
        return Sources.from_data_dir(self.layout.data_dir, self.layout.postgres_url)

    def check(self, **options: Any) -> Report:
        """The invariant checker (``intyg check``) over this system's databases."""
        return check(self.sources(), **options)

    def log(self, name: str) -> str:
        return self.layout.log_file(name).read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.supervisor.stop_all()
