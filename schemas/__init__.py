"""The contracts of the pipeline.

Message models, topic registry, ClickHouse DDL and capture format.
"""
