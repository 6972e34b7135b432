"""Rendering of the schema files for one installation (pure: no client, unit-testable).

The `.sql` files in `schemas/sql` are the single source for both places (DESIGN.md, "Storage").
They name `{database}` and `{log_ttl_days}`; a server running a cluster also needs every CREATE
to run ``ON CLUSTER`` and every table engine in its ``Replicated*`` form. Rather than keep a
second copy of the schema, the runner rewrites those two things here:

- ``cluster``: ``CREATE <TABLE|VIEW|MATERIALIZED VIEW|DATABASE> IF NOT EXISTS <name>`` gets
  ``ON CLUSTER '<cluster>'`` after the name;
- ``replicated``: ``ENGINE = <X>MergeTree`` becomes ``ENGINE = Replicated<X>MergeTree`` with its
  arguments unchanged. Without a ZooKeeper path the server's ``default_replica_path`` and
  ``default_replica_name`` apply (``/clickhouse/tables/{uuid}/{shard}`` and ``{replica}``), which
  need the ``{shard}``/``{replica}`` macros on every server (docs/clickhouse.md).

Migration checksums are taken over the file text, not the rendering, so changing these options
never looks like an edited migration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CREATE = re.compile(
    r"(?P<head>\bCREATE\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW|DATABASE)\s+IF\s+NOT\s+EXISTS\s+"
    r"[A-Za-z_][A-Za-z0-9_.]*)",
    re.IGNORECASE,
)
_ENGINE = re.compile(
    r"\bENGINE\s*=\s*(?P<family>Replacing|Aggregating|Summing|Collapsing|"
    r"VersionedCollapsing)?MergeTree\b",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"\{(?P<name>database|log_ttl_days)\}")


@dataclass(frozen=True)
class DdlOptions:
    """What differs between installations in the schema DDL."""

    database: str
    log_ttl_days: int = 14
    cluster: str | None = None
    replicated: bool = False

    def values(self) -> dict[str, str]:
        return {"database": self.database, "log_ttl_days": str(self.log_ttl_days)}


def render(sql: str, options: DdlOptions) -> str:
    """The statement(s) in `sql` as this installation runs them."""
    values = options.values()
    text = _PLACEHOLDER.sub(lambda m: values[m["name"]], sql)
    if options.cluster:
        cluster = options.cluster.replace("'", "")
        text = _CREATE.sub(lambda m: f"{m['head']} ON CLUSTER '{cluster}'", text)
    if options.replicated:
        text = _ENGINE.sub(lambda m: f"ENGINE = Replicated{m['family'] or ''}MergeTree", text)
    return text
