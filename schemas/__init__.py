"""Message models, topic registry, ClickHouse DDL and capture format: the contracts of the pipeline."""
