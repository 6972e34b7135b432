"""ClickHouse storage: the store (server over HTTP or embedded engine), migrations, the Kafka sink.

Only light modules are imported here; `sinks.clickhouse.sink` (confluent-kafka) is imported by
whoever runs the sink.
"""

from sinks.clickhouse.migrations import MigrationError, migrate
from sinks.clickhouse.store import Store, open_store

__all__ = ["MigrationError", "Store", "migrate", "open_store"]
