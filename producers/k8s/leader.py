"""One active `k8s-watch` / `log-stream` with standbys: leader election on a Lease.

Uses the official client's implementation of client-go's leader election
(`kubernetes.leaderelection`, `LeaseLock`: get, create and update of a
``coordination.k8s.io/v1`` Lease). Every replica is a candidate; the one holding the lease does
the work (`lead`), the others wait and take over once the lease has not been renewed for
`leader_election.lease_duration_s`. The overlap a takeover can cause (the new leader lists and
publishes every object again) is absorbed downstream by the de-duplication on uid +
resourceVersion.

- Shutdown (SIGTERM, a rolling update): the leader stops its work, flushes, then releases the
  lease (no holder), so a standby takes over at its next retry instead of after a whole lease
  duration. A standby stops without touching the lease.
- A leader that cannot renew in time (API server unreachable, a long pause) stops its work and
  the process exits with an error: it may no longer be the only one publishing, and a restarted
  process rejoins as a candidate.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime.config import Settings
from runtime.leader_config import LeaderElectionConfig

log = logging.getLogger("sentinel.leader")

WORK_STOP_TIMEOUT_S = 60.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeadershipLost(RuntimeError):
    """The lease could not be renewed in time: another replica may be leading now."""


@dataclass
class ElectionStatus:
    """What /ready reports: leader, standby, or single (no election)."""

    role: str = "starting"
    identity: str = ""
    lease: str = ""
    transitions: list[str] = field(default_factory=list)

    def set(self, role: str) -> None:
        self.role = role
        self.transitions.append(role)


def lease_name(settings: Settings, component: str) -> str:
    configured = settings.leader_election.lease_name
    if configured:
        return configured
    prefix = settings.topics.prefix.lower().replace(".", "-").replace("_", "-")
    return f"{prefix}{component}".strip("-")


def lease_namespace(config: LeaderElectionConfig) -> str:
    if config.namespace:
        return config.namespace
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return os.environ.get("POD_NAMESPACE") or "default"


def candidate_identity(config: LeaderElectionConfig) -> str:
    # Unique per process, as client-go does (host name + uuid): a restarted pod of the same
    # name is a new candidate, never mistaken for the holder it replaced.
    base = config.identity or os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


def _lease_lock(name: str, namespace: str, identity: str, api: Any) -> Any:
    from kubernetes import client
    from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

    class ClosableLeaseLock(LeaseLock):
        """The client's LeaseLock on our API client; refuses to take or renew once closed."""

        def __init__(self) -> None:
            super().__init__(name, namespace, identity)  # type: ignore[no-untyped-call]
            # LeaseLock builds its API object on the default configuration; ours knows the
            # cluster (in-cluster or kubeconfig).
            self.api_instance = client.CoordinationV1Api(api)
            self.closed = threading.Event()

        def create(self, name: str, namespace: str, election_record: Any) -> bool:
            if self.closed.is_set():
                return False
            created = super().create(name, namespace, election_record)  # type: ignore[no-untyped-call]
            return bool(created)

        def update(self, name: str, namespace: str, updated_record: Any) -> bool:
            if self.closed.is_set():
                return False
            updated = super().update(name, namespace, updated_record)  # type: ignore[no-untyped-call]
            return bool(updated)

        def release(self) -> bool:
            """Give the lease up if we hold it: no holder, so a standby takes it at once."""
            from kubernetes.client.exceptions import ApiException

            try:
                lease = self.api_instance.read_namespaced_lease(self.name, self.namespace)
                if lease.spec is None or lease.spec.holder_identity != self.identity:
                    return False
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                lease.spec.renew_time = datetime.now(UTC)
                self.api_instance.replace_namespaced_lease(self.name, self.namespace, lease)
                return True
            except ApiException as exc:
                log.warning("could not release lease %s: %s", self.name, exc.reason)
                return False

    return ClosableLeaseLock()


def run_elected(
    settings: Settings,
    api: Any,
    component: str,
    stop: threading.Event,
    lead: Callable[[threading.Event], None],
    status: ElectionStatus | None = None,
) -> None:
    """Run `lead(stop_leading)` while this process leads (at once without election).

    Returns when `stop` is set; raises `LeadershipLost` when the lease was lost.
    """
    status = status if status is not None else ElectionStatus()
    config = settings.leader_election
    if not config.enabled:
        status.set("single")
        lead(stop)
        return
    from kubernetes.leaderelection import electionconfig, leaderelection

    name, namespace = lease_name(settings, component), lease_namespace(config)
    status.identity, status.lease = candidate_identity(config), f"{namespace}/{name}"
    lock = _lease_lock(name, namespace, status.identity, api)
    leading = threading.Event()
    stop_leading = threading.Event()
    work_done = threading.Event()
    lost = threading.Event()

    def started() -> None:
        if stop.is_set():
            return  # took the lease while shutting down: leave the work to the others
        leading.set()
        status.set("leader")
        log.info("%s: leading (lease %s, identity %s)", component, status.lease, status.identity)
        try:
            lead(stop_leading)
        finally:
            work_done.set()
            stop.set()  # the work ended: so does the process

    def stopped() -> None:
        if not stop.is_set():
            lost.set()
            log.error("%s: lease %s lost; stopping the work", component, status.lease)
            stop_leading.set()
            stop.set()

    election = leaderelection.LeaderElection(
        electionconfig.Config(  # type: ignore[no-untyped-call]
            lock,
            lease_duration=config.lease_duration_s,
            renew_deadline=config.renew_deadline_s,
            retry_period=config.retry_period_s,
            onstarted_leading=started,
            onstopped_leading=stopped,
        )
    )
    status.set("standby")
    log.info("%s: standby for lease %s as %s", component, status.lease, status.identity)
    threading.Thread(target=election.run, name=f"{component}-election", daemon=True).start()
    stop.wait()
    lock.closed.set()
    stop_leading.set()
    # `lead` runs on the election's thread: release the lease only once it stopped and flushed.
    if leading.is_set() and not work_done.wait(WORK_STOP_TIMEOUT_S):
        log.warning("%s: work did not stop within %.0f s", component, WORK_STOP_TIMEOUT_S)
    if leading.is_set() and not lost.is_set() and lock.release():
        log.info("%s: released lease %s", component, status.lease)
    if lost.is_set():
        raise LeadershipLost(f"lease {status.lease} was not renewed in time")
