"""The checks' results and the pure decisions behind them (no I/O: unit-tested).

A `Check` is one line of `sentinel doctor`'s output: what was checked, how it went, what was
seen, and for a failure or a warning what to do (ending with the troubleshooting section).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum

from runtime.config import Settings
from runtime.troubleshooting import see


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but probably not as intended (an unsigned webhook endpoint)
    FAIL = "fail"  # something the user must fix; the exit status is non-zero
    SKIP = "skip"  # does not apply here (no cluster configured, no stack running)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None  # what to do, for WARN and FAIL

    def line(self) -> str:
        mark = {Status.OK: "ok  ", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: "skip"}
        text = f"{mark[self.status]}  {self.name}: {self.detail}"
        if self.fix and self.status in (Status.WARN, Status.FAIL):
            text += f"\n      -> {self.fix}"
        return text


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def skip(name: str, detail: str) -> Check:
    return Check(name, Status.SKIP, detail)


def warn(name: str, detail: str, fix: str, anchor: str) -> Check:
    return Check(name, Status.WARN, detail, f"{fix} ({see(anchor)})")


def fail(name: str, detail: str, fix: str, anchor: str) -> Check:
    return Check(name, Status.FAIL, detail, f"{fix} ({see(anchor)})")


def exit_code(checks: Iterable[Check]) -> int:
    return 1 if any(check.status is Status.FAIL for check in checks) else 0


def render_text(checks: list[Check]) -> str:
    counts = {status: sum(c.status is status for c in checks) for status in Status}
    tail = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    return "\n".join([*(check.line() for check in checks), "", f"{len(checks)} checks: {tail}"])


def render_json(checks: list[Check]) -> str:
    return json.dumps(
        {"checks": [asdict(c) for c in checks], "ok": exit_code(checks) == 0}, indent=2
    )


# --------------------------------------------------------------------------------------------
# Kafka topics


def topic_problems(
    expected: Mapping[str, int], found: Mapping[str, int]
) -> tuple[list[str], list[str]]:
    """(missing topics, "name has N partitions" for counts that differ from the config)."""
    missing = sorted(name for name in expected if name not in found)
    wrong = sorted(
        f"{name} has {found[name]} partitions, not {want}"
        for name, want in expected.items()
        if name in found and found[name] != want
    )
    return missing, wrong


# --------------------------------------------------------------------------------------------
# ClickHouse migrations


def migration_problems(
    files: Mapping[str, str], applied: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """(versions not applied yet, versions whose file changed after it was applied):
    `files` and `applied` map version -> checksum."""
    pending = sorted(version for version in files if version not in applied)
    changed = sorted(
        version
        for version, checksum in files.items()
        if version in applied and applied[version] != checksum
    )
    return pending, changed


# --------------------------------------------------------------------------------------------
# Kubernetes permissions


@dataclass(frozen=True)
class Permission:
    """One SelfSubjectAccessReview: may we `verb` `resource` (in `namespace`; None = all)?"""

    component: str
    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str | None = None

    def label(self) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = f".{self.group}" if self.group else ""
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {what}{group} {where}"


_KIND_RESOURCE = {"Pod": ("", "pods"), "Job": ("batch", "jobs"), "Service": ("", "services")}


def required_permissions(settings: Settings, lease_namespace: str = "default") -> list[Permission]:
    """What `k8s-watch` and `log-stream` call, in the namespaces they are configured for: list
    and watch every watched kind (core/v1 Events for Event), get pods and pods/log for the log
    streamer, and get/create/update on Leases when leader election is on."""
    k8s = settings.k8s
    scopes: list[str | None] = list(k8s.namespaces) or [None]
    needed: list[Permission] = []
    for namespace in scopes:
        for kind in k8s.kinds:
            group, resource = _KIND_RESOURCE.get(kind.value, ("", "events"))
            for verb in ("list", "watch"):
                needed.append(Permission("k8s-watch", verb, resource, group, namespace=namespace))
        for verb in ("get", "list", "watch"):
            needed.append(Permission("log-stream", verb, "pods", namespace=namespace))
        logs = Permission("log-stream", "get", "pods", subresource="log", namespace=namespace)
        needed.append(logs)
    if settings.leader_election.enabled:
        lease_ns = settings.leader_election.namespace or lease_namespace
        for component in ("k8s-watch", "log-stream"):
            for verb in ("get", "create", "update"):
                needed.append(
                    Permission(component, verb, "leases", "coordination.k8s.io", namespace=lease_ns)
                )
    return needed
