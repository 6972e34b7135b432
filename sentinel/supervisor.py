"""Supervision of what `sentinel up` runs: a child that dies is restarted, and said so.

The embedded stack runs the broker and the Faust worker as child processes and the ClickHouse
sink and alert dispatcher as threads. Each is a `Child` here: how to tell it is alive, why it
stopped, how to start it again. The `Supervisor` thread checks them twice a second; one that
died is logged with its exit status and restarted after a capped exponential backoff (1 s, 2 s,
4 s, ... 30 s; back to 1 s once it has run for a minute). Until it is back (started and, for
the worker, consuming again), `problems()` names it (the API's `/ready` answers 503 with it)
and `sentinel_child_up` says 0. A child that cannot
be restarted (the Tansu broker: its topics were in memory) calls `on_fatal` instead, and
`sentinel up` stops everything and exits non-zero: never a stack that looks up but is not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.metrics import CHILD_RESTARTS, CHILD_UP

log = logging.getLogger("sentinel.supervisor")


@dataclass
class RestartSchedule:
    """When to try again after a child died (pure: times are given)."""

    initial_s: float = 1.0
    max_s: float = 30.0
    stable_s: float = 60.0
    attempts: int = 0
    started_at: float = 0.0
    retry_at: float | None = None
    last_exit: str | None = None
    restarts: int = 0
    starting: bool = False  # restarted, not ready yet

    def exited(self, now: float, why: str, ran: bool = True) -> float:
        """The child is gone (`ran`: it had started; else starting it failed): the delay
        before the next start."""
        if ran and now - self.started_at >= self.stable_s:
            self.attempts = 0  # it ran long enough: this is a new failure, not a crash loop
        delay = min(self.max_s, self.initial_s * 2.0**self.attempts)
        self.attempts += 1
        self.retry_at = now + delay
        self.last_exit = why
        return delay

    def due(self, now: float) -> bool:
        return self.retry_at is not None and now >= self.retry_at

    def started(self, now: float, restart: bool = True) -> None:
        self.started_at = now
        self.retry_at = None
        self.starting = restart
        if restart:
            self.restarts += 1

    def problem(self, now: float) -> str | None:
        """What `/ready` says while the child is down; None while it runs."""
        if self.retry_at is None:
            return f"{self.last_exit}; restarted, not ready yet" if self.starting else None
        wait = max(0.0, self.retry_at - now)
        return f"{self.last_exit}; restart {self.attempts} in {wait:.1f} s"


@dataclass
class Child:
    """One supervised process or thread. `restart` raises if it could not start it again;
    `restartable=False` makes its death fatal for the whole stack."""

    name: str
    alive: Callable[[], bool]
    restart: Callable[[], None]
    exit_reason: Callable[[], str]
    details: Callable[[], Mapping[str, Any]] = field(default=lambda: {})
    ready: Callable[[], bool] = field(default=lambda: True)
    restartable: bool = True
    schedule: RestartSchedule = field(default_factory=RestartSchedule)


class Supervisor:
    def __init__(
        self,
        children: list[Child],
        on_fatal: Callable[[str], None],
        interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = children
        self.on_fatal = on_fatal
        self.interval_s = interval_s
        self.clock = clock
        self.fatal: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        now = clock()
        for child in children:
            child.schedule.started(now, restart=False)
            CHILD_UP.labels(child.name).set(1)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop supervising (before the stack stops its children on purpose)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(120)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check_once()

    def check_once(self) -> None:
        for child in self.children:
            if self._stop.is_set() or self.fatal is not None:
                return
            with self._lock:
                self._check(child, self.clock())

    def _check(self, child: Child, now: float) -> None:
        schedule = child.schedule
        if schedule.retry_at is None:
            if child.alive():
                if schedule.starting and child.ready():
                    schedule.starting = False
                    CHILD_UP.labels(child.name).set(1)
                    log.warning("%s is back (restart %d)", child.name, schedule.restarts)
                return
            why = f"{child.name} {child.exit_reason()}"
            CHILD_UP.labels(child.name).set(0)
            if not child.restartable:
                self.fatal = why
                log.critical("%s; it cannot be restarted: stopping", why)
                self.on_fatal(why)
                return
            delay = schedule.exited(now, why)
            log.error("%s; restarting it in %.1f s (attempt %d)", why, delay, schedule.attempts)
            return
        if not schedule.due(now):
            return
        try:
            child.restart()
        except Exception as exc:
            why = f"{child.name} could not start: {exc}"
            delay = schedule.exited(self.clock(), why, ran=False)
            log.error("%s could not start: %s; next try in %.1f s", child.name, exc, delay)
            return
        schedule.started(self.clock())
        CHILD_RESTARTS.labels(child.name).inc()
        log.warning("%s restarted (restart %d)", child.name, schedule.restarts)
        if child.ready():
            schedule.starting = False
            CHILD_UP.labels(child.name).set(1)

    def problems(self) -> dict[str, str]:
        """Children not running now, and why (for `/ready`)."""
        now = self.clock()
        found = {}
        for child in self.children:
            problem = child.schedule.problem(now)
            if problem is not None:
                found[child.name] = problem
        if self.fatal is not None:
            found["stack"] = self.fatal
        return found

    def details(self) -> dict[str, Any]:
        return {
            child.name: {
                "restarts": child.schedule.restarts,
                "running": child.schedule.retry_at is None and not child.schedule.starting,
                **child.details(),
            }
            for child in self.children
        }
