"""Versioned, idempotent schema migrations from the numbered `.sql` files in `schemas/sql`.

Files are named ``NNNN_name.sql`` and applied in version order. Each applied file is recorded in
``schema_migrations`` with its checksum; a later run applies only the new files and refuses to
continue if an applied file was edited (add a new file instead). ``{database}`` and
``{log_ttl_days}`` in a file are replaced, and ON CLUSTER / Replicated engines added when
configured, by `sinks.clickhouse.ddl.render` with the store's `DdlOptions`.

A file may hold several statements, each ending with ``;`` at the end of a line; ``--`` comment
lines are dropped. Statements should be idempotent (``IF NOT EXISTS``): a file that failed half
way is re-run from its first statement.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from sinks.clickhouse.ddl import DdlOptions, render
from sinks.clickhouse.store import Store

log = logging.getLogger("sentinel.store.migrations")

MIGRATIONS_TABLE = "schema_migrations"
DATABASE_PLACEHOLDER = "{database}"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[A-Za-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migration files or the recorded history are inconsistent; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, options: DdlOptions | str) -> list[str]:
        if isinstance(options, str):
            options = DdlOptions(database=options)
        return split_statements(render(self.sql, options))


def migrate(store: Store, source: Traversable | Path | None = None) -> list[str]:
    """Apply the migrations not applied yet, in order; return their versions (empty: up to date)."""
    migrations = load_migrations(source)
    _ensure_history_table(store)
    applied = _applied_checksums(store)
    _check_unchanged(migrations, applied)
    done: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        _apply(store, migration, store.ddl_options)
        done.append(migration.version)
    return done


def load_migrations(source: Traversable | Path | None = None) -> list[Migration]:
    """The migration files in `source` (default: the installed `schemas/sql`), by version."""
    directory: Traversable | Path = source or resources.files("schemas") / "sql"
    found: dict[str, Migration] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"{entry.name}: migration files must be named NNNN_name.sql")
        version = match["version"]
        if version in found:
            raise MigrationError(
                f"{entry.name}: version {version} is also used by {found[version].filename}"
            )
        found[version] = Migration(version, match["name"], entry.name, entry.read_text("utf-8"))
    return [found[version] for version in sorted(found)]


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` at line ends; drop ``--`` comment lines and empty statements."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        stripped = line.rstrip()
        if stripped.endswith(";"):
            current.append(stripped[:-1])
            statements.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    statements.append("\n".join(current).strip())
    return [statement for statement in statements if statement]


def _ensure_history_table(store: Store) -> None:
    # ReplacingMergeTree: two processes migrating at once may both record a version; one row
    # survives, and reads use FINAL anyway.
    sql = f"""
        CREATE TABLE IF NOT EXISTS {store.database}.{MIGRATIONS_TABLE}
        (
            version String COMMENT 'Version prefix of the migration file (NNNN).',
            name String COMMENT 'Name part of the migration file.',
            checksum String COMMENT 'SHA-256 of the file as applied.',
            applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it was applied.'
        )
        ENGINE = ReplacingMergeTree(applied_at)
        ORDER BY version
        COMMENT 'Schema migrations applied to this database (see sinks.clickhouse.migrations).'
        """
    store.command(render(sql, store.ddl_options))


def applied_checksums(store: Store) -> dict[str, str]:
    """Version -> checksum of every migration applied, without changing anything: empty while
    the history table does not exist yet (no `migrate` ran on this database)."""
    found = store.query_rows(
        "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": store.database, "t": MIGRATIONS_TABLE},
    )
    if not found or not found[0]["n"]:
        return {}
    return {version: checksum for version, (_name, checksum) in _applied_checksums(store).items()}


def _applied_checksums(store: Store) -> dict[str, tuple[str, str]]:
    rows = store.query_rows(
        f"SELECT version, name, checksum FROM {store.database}.{MIGRATIONS_TABLE} FINAL"
    )
    return {str(row["version"]): (str(row["name"]), str(row["checksum"])) for row in rows}


def _check_unchanged(migrations: list[Migration], applied: dict[str, tuple[str, str]]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is None:
            continue
        name, checksum = recorded
        if checksum != migration.checksum:
            raise MigrationError(
                f"{migration.filename}: changed after it was applied as version "
                f"{migration.version} ({name}); checksum {checksum[:12]}… recorded, "
                f"{migration.checksum[:12]}… now. Revert the edit and add a new migration file."
            )


def _apply(store: Store, migration: Migration, options: DdlOptions) -> None:
    log.info("applying migration %s", migration.filename)
    for statement in migration.statements(options):
        try:
            store.command(statement)
        except Exception as exc:
            raise MigrationError(f"{migration.filename}: statement failed: {exc}") from exc
    store.insert(
        MIGRATIONS_TABLE,
        [{"version": migration.version, "name": migration.name, "checksum": migration.checksum}],
        column_names=("version", "name", "checksum"),
    )
