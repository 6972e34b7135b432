"""Settings of leader election for `k8s-watch` and `log-stream` (`leader_election:`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LeaderElectionConfig(BaseModel):
    """One active instance per component, the others on standby, through a Lease.

    The timings are those of client-go's leader election, which the official Python client
    reimplements: the leader renews every `retry_period_s` and gives up when it could not
    renew for `renew_deadline_s`; a standby takes over once the lease was not renewed for
    `lease_duration_s`. Whole seconds (a Lease stores whole seconds).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False, description="Run k8s-watch / log-stream as leader + standby replicas."
    )
    namespace: str | None = Field(
        default=None,
        description="Namespace of the Lease; null = the pod's own (service account), else "
        "$POD_NAMESPACE, else default.",
    )
    lease_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Lease name; null = <topic prefix>k8s-watch / <topic prefix>log-stream "
        "(dots as dashes), one lease per component and installation.",
    )
    identity: str | None = Field(
        default=None, description="This candidate's name; null = $POD_NAME (else host name)."
    )
    lease_duration_s: int = Field(default=15, ge=2, le=3600)
    renew_deadline_s: int = Field(default=10, ge=2, le=3600)
    retry_period_s: int = Field(default=2, ge=1, le=600)

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElectionConfig:
        # The official client refuses (sys.exit) other combinations; say why here instead.
        if self.lease_duration_s <= self.renew_deadline_s:
            raise ValueError("lease_duration_s must be greater than renew_deadline_s")
        if self.renew_deadline_s <= 1.2 * self.retry_period_s:
            raise ValueError("renew_deadline_s must be greater than 1.2 x retry_period_s")
        return self
