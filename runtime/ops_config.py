"""Settings of the operations endpoint every long-running component serves (`ops:`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OpsConfig(BaseModel):
    """`/health`, `/ready` and `/metrics` on their own port, for probes and Prometheus.

    Off by default (several components on one machine would share a port); the container
    image turns it on (``SENTINEL_OPS__PORT=8081``, host 0.0.0.0), so every Deployment probes
    the same port whatever its component.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address the ops endpoint listens on.")
    port: int | None = Field(
        default=None, ge=0, le=65535, description="Port of /health, /ready, /metrics; null = off."
    )
    stall_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="/health fails when the component's main loop has not turned for this long "
        "(a hung worker event loop or sink poll loop), so the orchestrator restarts it.",
    )
    partition_stall_s: float = Field(
        default=120.0,
        gt=0,
        le=86400,
        description="/health fails when a partition this process consumes has lag and its "
        "committed offset has not moved for this long (a consumer that stopped fetching or "
        "committing while its loop still turns), so the orchestrator restarts it.",
    )
    progress_check_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="How often the committed and end offsets of those partitions are read.",
    )
