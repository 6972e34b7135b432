"""The ClickHouse store: one clickhouse-connect client, to a server (HTTP) or the embedded engine.

`open_store(settings)` picks the place from the config: with `store.dsn` set it talks HTTP to that
server, without it it opens the embedded engine (clickhouse-connect's chdb interface) under
``<embedded.data_dir>/clickhouse``. Every query, insert and setting is the same code on both.

clickhouse_connect (and through it chdb, a 550 MB library) is imported inside `open_store`, never
at module import, so modules that only need the types stay light.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse, urlunparse

from runtime.config import Settings
from runtime.extras import require_embedded
from runtime.troubleshooting import STORE_LOCKED, see
from sinks.clickhouse.ddl import DdlOptions, render

log = logging.getLogger("sentinel.store")

EMBEDDED_SUBDIR = "clickhouse"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Rows = Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]]


class Store:
    """A thin, thread-safe wrapper over one clickhouse-connect client bound to `database`.

    The embedded engine runs in this process and is shared by the sink thread and the API's
    request threads, so its calls are serialized with a lock; an HTTP client is safe to share
    (no session id), so it runs calls concurrently.
    """

    def __init__(
        self,
        client: Any,
        database: str,
        *,
        serialize: bool,
        ddl_options: DdlOptions | None = None,
        insert_settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._database = database
        self.ddl_options = ddl_options or DdlOptions(database=database)
        self._insert_settings = dict(insert_settings or {})
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if serialize else contextlib.nullcontext()
        )

    @property
    def database(self) -> str:
        return self._database

    @property
    def client(self) -> Any:
        """The underlying clickhouse-connect client (bypasses the lock: use with care)."""
        return self._client

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL) or a single value."""
        with self._lock:
            return self._client.command(sql, parameters=_params(parameters))

    def query_rows(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run a query; one dict per row, keyed by column name. Use {name:Type} placeholders."""
        with self._lock:
            result = self._client.query(sql, parameters=_params(parameters))
            return list(result.named_results())

    def insert(
        self,
        table: str,
        rows: Rows,
        column_names: Sequence[str],
        dedup_token: str | None = None,
        *,
        column_oriented: bool = False,
    ) -> int:
        """Insert rows (dicts, or sequences in `column_names` order); return the rows sent.

        With `dedup_token`, ClickHouse drops the insert if a block with the same token landed
        before (within the table's deduplication window), so a retried batch lands once.
        """
        if not rows:
            return 0
        data = _as_sequences(rows, column_names) if not column_oriented else rows
        count = len(rows[0]) if column_oriented else len(rows)
        settings: dict[str, Any] = dict(self._insert_settings)
        if dedup_token is not None:
            settings.update(
                insert_deduplicate=1,
                insert_deduplication_token=dedup_token,
                # A retry whose source block is dropped as a duplicate must not feed the
                # materialized views twice either.
                deduplicate_blocks_in_dependent_materialized_views=1,
            )
        with self._lock:
            self._client.insert(
                table,
                data,
                column_names=list(column_names),
                column_oriented=column_oriented,
                settings=settings or None,
            )
        return count

    def ping(self) -> bool:
        try:
            with self._lock:
                return bool(self._client.ping())
        except Exception:  # a dead store is an answer here, not an error
            log.debug("store ping failed", exc_info=True)
            return False

    def close(self) -> None:
        with self._lock:
            self._client.close()


class StoreLockedError(RuntimeError):
    """The embedded engine's data directory is owned by another process."""


def store_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the store did not take this call" (retry later, do not drop data)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    return (ClickHouseError, OSError)


def open_store(settings: Settings, *, create_database: bool = True) -> Store:
    """Connect to the configured server, or open the embedded engine; create the database
    (unless `create_database` is False: a read-only user, such as an analyst's, may not)."""
    database = settings.store.database
    if not _IDENTIFIER.match(database):
        raise ValueError(f"store.database {database!r} is not a plain identifier")
    options = ddl_options(settings)
    if settings.store.dsn:
        client = _http_client(settings)
        serialize = False
    else:
        if options.cluster or options.replicated:
            raise ValueError(
                "store.cluster and store.replicated need a ClickHouse server (store.dsn); "
                "the embedded engine is a single node"
            )
        client = _embedded_client(embedded_path(settings))
        serialize = True
    try:
        if create_database:
            client.command(render(f"CREATE DATABASE IF NOT EXISTS {database}", options))
        client.database = database
    except BaseException:
        client.close()
        raise
    return Store(
        client,
        database,
        serialize=serialize,
        ddl_options=options,
        insert_settings=insert_settings(settings),
    )


def ddl_options(settings: Settings) -> DdlOptions:
    store = settings.store
    return DdlOptions(
        database=store.database,
        log_ttl_days=store.log_ttl_days,
        cluster=store.cluster,
        replicated=store.replicated,
    )


def insert_settings(settings: Settings) -> dict[str, Any]:
    """Settings sent with every insert: the configured extras, plus async inserts if enabled.

    Async inserts are always waited for (wait_for_async_insert=1): the sink commits offsets only
    after the insert returned, so it must return only once the data is written.
    """
    values: dict[str, Any] = dict(settings.store.insert_settings)
    if settings.store.async_insert:
        values.update(async_insert=1, wait_for_async_insert=1, async_insert_deduplicate=1)
    return values


def embedded_path(settings: Settings) -> Path:
    return (settings.embedded.data_dir / EMBEDDED_SUBDIR).resolve()


def _embedded_client(path: Path) -> Any:
    require_embedded(
        "chdb",
        "the embedded ClickHouse store (store.dsn is not set)",
        "set store.dsn (or SENTINEL_STORE__DSN) to a ClickHouse server",
    )
    import clickhouse_connect

    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    log.info("opening embedded ClickHouse engine at %s", path)
    try:
        # tz_mode="aware": DateTime64('UTC') columns come back as aware UTC datetimes.
        return clickhouse_connect.get_client(interface="chdb", path=str(path), tz_mode="aware")
    except Exception as exc:
        # chdb prints "Cannot lock file .../status" to stderr but raises a generic error, so
        # ask the lock itself whether another process holds it.
        if "Cannot lock file" in str(exc) or _locked_by_another_process(path / "status"):
            raise StoreLockedError(
                f"the embedded ClickHouse store at {path} is in use by another process "
                "(a running `sentinel up`, `sentinel api --with-sink` or `sentinel sink`); "
                "stop that process first, or point store.dsn at a ClickHouse server "
                f"({see(STORE_LOCKED)})"
            ) from exc
        raise


def _locked_by_another_process(status_file: Path) -> bool:
    import fcntl

    try:
        with status_file.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _http_client(settings: Settings) -> Any:
    import clickhouse_connect

    store = settings.store
    dsn, database, password_env = store.dsn or "", store.database, store.password_env
    parsed = urlparse(dsn)
    named = unquote(parsed.path.strip("/").split("/")[0]) if parsed.path else ""
    if named and named != database:
        raise ValueError(
            f"store.dsn names database {named!r} but store.database is {database!r}; "
            "set store.database and leave the database out of the DSN"
        )
    # The database may not exist yet: connect without it, create it, then switch to it.
    bare = urlunparse(parsed._replace(path=""))
    log.info("connecting to ClickHouse at %s", parsed.hostname)
    return clickhouse_connect.get_client(
        dsn=bare,
        password=os.environ.get(password_env, ""),
        tz_mode="aware",
        compress=False if store.compression == "none" else store.compression,
        connect_timeout=store.connect_timeout_s,
        send_receive_timeout=store.send_receive_timeout_s,
        # Without a session id the client can be shared by threads (a session allows one
        # query at a time).
        autogenerate_session_id=False,
    )


def _params(parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(parameters) if parameters is not None else None


def _as_sequences(rows: Rows, column_names: Sequence[str]) -> list[Sequence[Any]]:
    converted: list[Sequence[Any]] = []
    for row in rows:
        if isinstance(row, Mapping):
            converted.append([row[name] for name in column_names])
        else:
            converted.append(row)
    return converted
