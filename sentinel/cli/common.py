"""What every `sentinel` subcommand shares: settings from the arguments, serving, signals."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Callable
from typing import Any

from runtime.config import Settings, load_settings

EXIT_CONFIG = 2


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(args.config, **overrides)


def serve(server: Any) -> None:
    """Run uvicorn until Ctrl-C / SIGTERM, then return so the caller stops the rest.

    uvicorn re-raises the signal it caught once it has shut down. SIGTERM's default action would
    end the process on the spot, leaving the broker and worker children running, so both
    signals are turned into KeyboardInterrupt, which is the normal way out here.
    """

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


def on_signals(handler: Callable[[], None]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: handler())
