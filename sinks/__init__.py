"""Sinks: ClickHouse writer and alert channels."""
