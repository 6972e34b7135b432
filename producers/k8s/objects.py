"""Pure normalisation of Kubernetes objects into `K8sObjectEvent`s (no I/O, no kubernetes client).

Shared by the live watcher (`producers.k8s.watch`) and capture replay, so both produce the same
messages for the same object. Objects are the raw JSON dicts the API server sends.

Correlation (DESIGN.md "Runs and correlation"): the first `k8s.correlation` rule whose label or
annotation is present gives the run key. A Job no rule matched gets `k8s.job_correlation`
(``job:{namespace}/{name}``), the same key its pods get from their ``job-name`` label. A core/v1
Event has no labels of its own: its key is the key last seen on the object it is about
(``involvedObject.uid``) when the caller passes what it has seen (`K8sNormalizer` does), else the
Job key when the Event is about a Job, else None.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from runtime.config import K8sConfig
from schemas import keys
from schemas.k8s_time import parse_k8s_time
from schemas.messages import K8sEventType, K8sObjectEvent

NOISE_ANNOTATIONS = frozenset(
    {
        # Whole copy of the last applied manifest: large and already in git.
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
    }
)
NOISE_METADATA = frozenset({"managedFields", "selfLink"})


def strip_noise(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` without managedFields, selfLink and noisy annotations (input untouched)."""
    out = dict(obj)
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        meta = {k: v for k, v in metadata.items() if k not in NOISE_METADATA}
        annotations = metadata.get("annotations")
        if isinstance(annotations, Mapping):
            kept = {k: v for k, v in annotations.items() if k not in NOISE_ANNOTATIONS}
            if kept:
                meta["annotations"] = kept
            else:
                meta.pop("annotations", None)
        out["metadata"] = meta
    return out


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _format(template: str, value: str, namespace: str, name: str) -> str:
    return template.format(value=value, namespace=namespace, name=name)


def correlation_key(
    obj: Mapping[str, Any],
    config: K8sConfig,
    seen: Mapping[str, str] | None = None,
) -> str | None:
    """The run correlation key of `obj`, or None when it belongs to no run.

    `seen` maps object uids to the correlation keys already derived for them; it lets a core/v1
    Event inherit the key of the object it is about.
    """
    meta = _meta(obj)
    namespace = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    labels = _str_map(meta.get("labels"))
    annotations = _str_map(meta.get("annotations"))
    for rule in config.correlation:
        value = labels.get(rule.label) if rule.label else annotations.get(rule.annotation or "")
        if value:
            return _format(rule.template, value, namespace, name)
    kind = obj.get("kind")
    if kind == "Job" and config.job_correlation:
        return _format(config.job_correlation, name, namespace, name)
    if kind == "Event":
        involved = obj.get("involvedObject") or obj.get("regarding")
        if isinstance(involved, Mapping):
            uid = involved.get("uid")
            if seen is not None and uid and str(uid) in seen:
                return seen[str(uid)]
            if involved.get("kind") == "Job" and config.job_correlation:
                inv_ns = str(involved.get("namespace") or namespace)
                inv_name = str(involved.get("name") or "")
                return _format(config.job_correlation, inv_name, inv_ns, inv_name)
    return None


def _status_times(status: Mapping[str, Any]) -> list[Any]:
    found: list[Any] = [status.get("startTime"), status.get("completionTime")]
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping):
            found += [condition.get("lastTransitionTime"), condition.get("lastProbeTime")]
    for field in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for container in status.get(field) or []:
            if not isinstance(container, Mapping):
                continue
            for which in ("state", "lastState"):
                state = container.get(which)
                if not isinstance(state, Mapping):
                    continue
                for detail in state.values():
                    if isinstance(detail, Mapping):
                        found += [detail.get("startedAt"), detail.get("finishedAt")]
    return found


def object_time(obj: Mapping[str, Any]) -> datetime | None:
    """When the object says its latest change happened, or None when it carries no time.

    Events: series.lastObservedTime, lastTimestamp, eventTime, firstTimestamp, creation time
    (first present wins). Other kinds: the newest of creation, status times (conditions,
    container states, start/completion) and deletion *request* time (deletionTimestamp minus
    the grace period: deletionTimestamp itself lies in the future).
    """
    meta = _meta(obj)
    if obj.get("kind") == "Event":
        series = obj.get("series")
        candidates = [
            series.get("lastObservedTime") if isinstance(series, Mapping) else None,
            obj.get("lastTimestamp"),
            obj.get("eventTime"),
            obj.get("firstTimestamp"),
            obj.get("deprecatedLastTimestamp"),
            meta.get("creationTimestamp"),
        ]
        for candidate in candidates:
            parsed = parse_k8s_time(candidate)
            if parsed is not None:
                return parsed
        return None
    times: list[datetime] = []
    status = obj.get("status")
    raw: list[Any] = [meta.get("creationTimestamp")]
    if isinstance(status, Mapping):
        raw += _status_times(status)
    times = [t for t in (parse_k8s_time(v) for v in raw) if t is not None]
    deletion = parse_k8s_time(meta.get("deletionTimestamp"))
    if deletion is not None:
        grace = meta.get("deletionGracePeriodSeconds")
        if isinstance(grace, int) and grace > 0:
            deletion -= timedelta(seconds=grace)
        times.append(deletion)
    return max(times) if times else None


def to_object_event(
    event_type: str,
    obj: Mapping[str, Any],
    received_at: datetime,
    config: K8sConfig,
    seen: Mapping[str, str] | None = None,
) -> K8sObjectEvent:
    """Normalise one watch (or list) event; `seen` as for `correlation_key`."""
    clean = strip_noise(obj)
    meta = _meta(clean)
    owners = meta.get("ownerReferences")
    return K8sObjectEvent(
        event_type=K8sEventType(event_type),
        kind=str(clean.get("kind") or ""),
        api_version=str(clean.get("apiVersion") or ""),
        namespace=meta.get("namespace") or None,
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        labels=_str_map(meta.get("labels")),
        annotations=_str_map(meta.get("annotations")),
        owner_refs=[dict(o) for o in owners if isinstance(o, Mapping)]
        if isinstance(owners, list)
        else [],
        correlation_key=correlation_key(clean, config, seen),
        cluster=config.cluster,
        object=clean,
        event_time=object_time(clean) or received_at,
        received_at=received_at,
    )


def object_key(event: K8sObjectEvent) -> str:
    """The topic key: ``namespace/name`` (just ``name`` for a cluster-scoped object), as the
    consumers check it (`schemas.keys`)."""
    return keys.object_key(event.namespace, event.name)


class K8sNormalizer:
    """`to_object_event` plus the uid → correlation key memory that lets Events inherit keys.

    Feed it events in the order they were received (live or replayed) and it gives the same
    messages. The memory is bounded: the least recently seen uids go first.
    """

    def __init__(self, config: K8sConfig, max_tracked: int = 100_000) -> None:
        self.config = config
        self.max_tracked = max_tracked
        self._keys: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def remember(self, obj: Mapping[str, Any]) -> None:
        """Learn an object's correlation key without an event (state restored at start)."""
        uid = str(_meta(obj).get("uid") or "")
        key = correlation_key(obj, self.config)
        if uid and key is not None and obj.get("kind") != "Event":
            self._keys[uid] = key
            while len(self._keys) > self.max_tracked:
                self._keys.popitem(last=False)

    def normalize(
        self,
        event_type: str,
        obj: Mapping[str, Any],
        received_at: datetime,
    ) -> K8sObjectEvent:
        event = to_object_event(event_type, obj, received_at, self.config, self._keys)
        if event.kind != "Event" and event.uid:
            # Deleted objects are kept (until pushed out by newer ones): Events about a pod
            # ("Killing", "FailedKillPod") still arrive after its DELETED.
            if event.correlation_key is None:
                self._keys.pop(event.uid, None)
            else:
                self._keys[event.uid] = event.correlation_key
                self._keys.move_to_end(event.uid)
                while len(self._keys) > self.max_tracked:
                    self._keys.popitem(last=False)
        return event
