"""Progress of long CLI work (analyze, replay, demo, the first start of up) on stderr, with rich.

On a terminal: a spinner while waiting for something (it says what), a bar with counts, the
elapsed time and a rate while records are sent. Anywhere else (a pipe, CI, a log file): one
plain line when a step starts and one when it ends, so logs stay readable. Nothing ever goes
to stdout: `--json` output stays one clean document.

Log records written while a display is live are routed through rich's console so they print
above the bar instead of through it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

Report = Callable[[int, int], None]


def startup_message(settings: Any, external: str | None = None) -> str:
    """What starting the embedded stack waits for; the first start also fetches the jars."""
    from sentinel.brokers import ApacheKafkaBroker, cache_dir

    if external or settings.kafka.bootstrap_servers:
        return f"starting the worker, the sink and the store (broker {external or 'configured'})"
    version = settings.embedded.kafka_version
    jars = cache_dir() / f"kafka-{version}" / "lib"
    first = ApacheKafkaBroker.available(version) and not jars.is_dir()
    fetching = " (first start: fetching the Apache Kafka jars, about a minute)" if first else ""
    return f"starting the broker{fetching}, the worker, the sink and the store"


class Steps:
    """One display per step; `enabled=False` (e.g. --quiet) shows nothing at all, and
    `plain=False` nothing when stderr is not a terminal (a service whose stderr is JSON logs)."""

    def __init__(
        self, enabled: bool = True, stream: IO[str] | None = None, plain: bool = True
    ) -> None:
        self.console = Console(file=stream or sys.stderr, stderr=stream is None)
        self.live = enabled and self.console.is_terminal
        self.enabled = enabled and (plain or self.live)

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        """A spinner saying what we wait for, with the time spent so far."""
        if not self.enabled:
            yield
            return
        if not self.live:
            yield from self._plain(what)
            return
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        with progress, _logs_through(progress.console):
            task = progress.add_task(what, total=None)
            yield
            progress.update(task, description=f"{what}: done")

    @contextmanager
    def counting(self, what: str, unit: str = "records") -> Iterator[Report]:
        """A bar: `report(done, total)` moves it (total 0: not known yet)."""
        if not self.enabled:
            yield _ignore
            return
        if not self.live:
            seen = [0, 0]

            def remember(done: int, total: int) -> None:
                seen[:] = [done, total]

            started = time.monotonic()
            self._line(f"{what} ...")
            yield remember
            self._line(
                f"{what}: {seen[0]}{f'/{seen[1]}' if seen[1] else ''} {unit} "
                f"in {time.monotonic() - started:.1f}s"
            )
            return
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        with progress, _logs_through(progress.console):
            task = progress.add_task(what, total=None)

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total or None)

            yield report

    def _plain(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        self._line(f"{what} ...")
        yield
        self._line(f"{what}: done in {time.monotonic() - started:.1f}s")

    def _line(self, text: str) -> None:
        print(text, file=self.console.file, flush=True)


def _ignore(_done: int, _total: int) -> None:
    return None


@contextmanager
def _logs_through(console: Console) -> Iterator[None]:
    """Point stream handlers that write to the terminal at rich's console for the duration."""
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (
            sys.stderr,
            sys.__stderr__,
        ):
            moved.append((handler, handler.stream))
            handler.setStream(_ConsoleWriter(console))
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


class _ConsoleWriter:
    """A file-like object that prints through a rich console (above its live display)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def write(self, text: str) -> int:
        if text.strip():
            self.console.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return True
