"""The capture builder both scenario generators share (deterministic: same input, same bytes).

    tests/data/scenarios/build_scenarios.py                  the structure/tracking scenarios
    tests/data/anomaly_scenarios/build_anomaly_scenarios.py  the anomaly-engine histories

Not run by itself: each generator puts ``tests/data`` on ``sys.path`` and imports from here the
pieces a capture is made of. Time and id helpers; ``Capture`` (the records, ordered and given
resourceVersions as etcd does); Kubernetes objects as the API server returns them (``Container``,
``Pod``, ``Job``, core/v1 Events), built from per-container timelines so every snapshot is
self-consistent; the background rollout that moves event time past every run without creating
one; GitHub webhook payloads from the corpus in ``tests/data/github-webhooks`` and ARC runner
pods; log lines in the shapes of ``tests/data/test-logs``; and the scaffolding of the generators:
``BaseScenario`` and ``write`` (a scenario's three files), ``expect`` / ``CheckFailed`` /
``read_written`` / ``replayed_log_line`` for their ``--check``, and ``run_generator``, the
command line their ``main`` runs. What a generator's scenarios and checks need only for
themselves stays in that generator.

Both generators' files come from here: after a change, run both with ``--check`` and make sure
``git status`` shows no written file changed unless that was the point.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

import yaml

if TYPE_CHECKING:  # the project is on sys.path only once a generator has put ROOT there
    from runtime.config import Settings
    from schemas.capture import K8sRecord, LogRecord, WebhookRecord
    from schemas.messages import LogLine

DATA = Path(__file__).resolve().parent  # tests/data
GITHUB_CORPUS = DATA / "github-webhooks"
JENKINS_CORPUS = DATA / "jenkins"
TEST_LOGS = DATA / "test-logs"

NAMESPACE_UUID = uuid.UUID("6f1c2a52-8d0e-4b8e-9a57-5b0e3c1d7a10")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

Obj = dict[str, Any]


# --------------------------------------------------------------------------------------------
# time and ids


def at(base: datetime, seconds: float) -> datetime:
    return base + timedelta(seconds=seconds)


def k8s_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def gh_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gh_step_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def capture_ts(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "+00:00")


def uid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE_UUID, "/".join(parts)))


def hexid(length: int, *parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def k8s_suffix(length: int, *parts: str) -> str:
    """A name suffix in the alphabet Kubernetes uses for generated names (no vowels, no 0/1/3)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --------------------------------------------------------------------------------------------
# the capture being built


@dataclass
class Capture:
    name: str
    records: list[tuple[datetime, int, Obj]] = field(default_factory=list)
    deliveries: int = 0
    pods: dict[tuple[str, str], str | None] = field(default_factory=dict)  # -> declared key

    def _add(self, ts: datetime, record: Obj) -> None:
        self.records.append((ts, len(self.records), record))

    def github(self, ts: datetime, event: str, body: Obj) -> None:
        self.deliveries += 1
        delivery = str(uuid.uuid5(NAMESPACE_UUID, f"{self.name}/delivery/{self.deliveries}"))
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
        self._add(ts, {"type": "webhook", "provider": "github", "headers": headers, "body": body})

    def jenkins(self, ts: datetime, body: Obj) -> None:
        # As `sentinel capture` records it: the identity is in the body, no headers.
        self._add(ts, {"type": "webhook", "provider": "jenkins", "headers": {}, "body": body})

    def k8s(self, ts: datetime, event: str, obj: Obj) -> None:
        self._add(ts, {"type": "k8s", "event": event, "object": copy.deepcopy(obj)})

    def log(self, ts: datetime, pod: Pod, container: str, line: str) -> None:
        record = {
            "type": "log",
            "namespace": pod.namespace,
            "pod": pod.name,
            "container": container,
            "line": line,
            "correlation_key": pod.expected_key,
        }
        self._add(ts, record)

    def lines(
        self, start: datetime, step: float, pod: Pod, container: str, lines: list[str]
    ) -> datetime:
        """Log `lines` from `start`, `step` seconds apart; returns the time of the last one."""
        moment = start
        for index, line in enumerate(lines):
            moment = at(start, index * step)
            self.log(moment, pod, container, line)
        return moment

    def timed(
        self, base: datetime, pod: Pod, container: str, lines: Sequence[tuple[float, str]]
    ) -> None:
        """Log each (offset, line) `offset` seconds after `base`."""
        for offset, line in lines:
            self.log(at(base, offset), pod, container, line)

    def ordered(self) -> list[Obj]:
        """Records in ts order (stable), resourceVersions assigned in that order as etcd does."""
        out = []
        revision = 48_213_000
        for ts, _, record in sorted(self.records, key=lambda item: (item[0], item[1])):
            if record["type"] == "k8s":
                revision += 7
                record["object"]["metadata"]["resourceVersion"] = str(revision)
            out.append(
                {
                    "type": record["type"],
                    "ts": capture_ts(ts),
                    **{k: v for k, v in record.items() if k != "type"},
                }
            )
        return out


# --------------------------------------------------------------------------------------------
# Kubernetes objects, built from timelines


class _Named(Protocol):
    """What object metadata is made of (Pod and Job have it)."""

    namespace: str
    name: str
    labels: dict[str, str]
    created: datetime
    annotations: dict[str, str]
    owner: Obj | None

    @property
    def uid(self) -> str: ...


def object_meta(obj: _Named, generation: int | None = None) -> Obj:
    """`obj`'s metadata as the API server returns it (Capture.ordered sets resourceVersion)."""
    metadata: Obj = {
        "name": obj.name,
        "namespace": obj.namespace,
        "uid": obj.uid,
        "resourceVersion": "0",
    }
    if generation is not None:
        metadata["generation"] = generation
    metadata["creationTimestamp"] = k8s_time(obj.created)
    metadata["labels"] = dict(obj.labels)
    if obj.annotations:
        metadata["annotations"] = dict(obj.annotations)
    if obj.owner:
        metadata["ownerReferences"] = [dict(obj.owner)]
    return metadata


@dataclass
class Container:
    name: str
    image: str
    image_id: str
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[Obj] | None = None
    started: datetime | None = None
    finished: datetime | None = None
    exit_code: int = 0
    reason: str | None = None
    message: str | None = None
    resources: Obj | None = None
    extra: Obj = field(default_factory=dict)

    def spec(self, mounts: list[Obj]) -> Obj:
        out: Obj = {"name": self.name, "image": self.image}
        if self.command:
            out["command"] = self.command
        if self.args:
            out["args"] = self.args
        if self.env:
            out["env"] = self.env
        out["imagePullPolicy"] = "IfNotPresent"
        out["resources"] = self.resources or {}
        out["terminationMessagePath"] = "/dev/termination-log"
        out["terminationMessagePolicy"] = "File"
        out["volumeMounts"] = mounts
        out.update(self.extra)
        return out

    def status(self, now: datetime, pod_uid: str, waiting_reason: str) -> Obj:
        container_id = f"containerd://{hexid(64, pod_uid, self.name)}"
        base: Obj = {"name": self.name, "image": self.image, "imageID": self.image_id}
        if self.started is None or now < self.started:
            return {
                **base,
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"waiting": {"reason": waiting_reason}},
                "image": self.image,
                "imageID": "",
            }
        if self.finished is None or now < self.finished:
            return {
                **base,
                "containerID": container_id,
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": k8s_time(self.started)}},
            }
        terminated: Obj = {
            "containerID": container_id,
            "exitCode": self.exit_code,
            "finishedAt": k8s_time(self.finished),
            "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
            "startedAt": k8s_time(self.started),
        }
        if self.message:
            terminated["message"] = self.message
        return {
            **base,
            "containerID": container_id,
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"terminated": terminated},
        }


@dataclass
class Pod:
    namespace: str
    name: str
    labels: dict[str, str]
    node: str
    pod_ip: str
    host_ip: str
    created: datetime
    scheduled: datetime
    containers: list[Container]
    init_containers: list[Container] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    owner: Obj | None = None
    service_account: str = "default"
    restart_policy: str = "Never"
    grace: int = 30
    deletion_requested: datetime | None = None
    spec_extra: Obj = field(default_factory=dict)
    expected_key: str | None = None  # what producers/k8s_events.py must derive (checked)

    @property
    def uid(self) -> str:
        return uid("pod", self.namespace, self.name)

    def _token_volume(self) -> str:
        return f"kube-api-access-{hexid(5, self.uid)}"

    def ready_at(self) -> datetime | None:
        starts = [c.started for c in self.containers]
        return max(starts) if all(starts) else None  # type: ignore[type-var]

    def done_at(self) -> datetime | None:
        ends = [c.finished for c in self.containers]
        return max(ends) if all(ends) else None  # type: ignore[type-var]

    def object(self, now: datetime) -> Obj:
        mounts = [
            {
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "name": self._token_volume(),
                "readOnly": True,
            }
        ]
        metadata = object_meta(self)
        if self.deletion_requested is not None and now >= self.deletion_requested:
            deadline = at(self.deletion_requested, self.grace)
            metadata["deletionTimestamp"] = k8s_time(deadline)
            metadata["deletionGracePeriodSeconds"] = self.grace
        spec: Obj = {}
        if self.init_containers:
            spec["initContainers"] = [c.spec(mounts) for c in self.init_containers]
        spec["containers"] = [c.spec(mounts) for c in self.containers]
        spec.update(
            {
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": True,
                "preemptionPolicy": "PreemptLowerPriority",
                "priority": 0,
                "restartPolicy": self.restart_policy,
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "serviceAccount": self.service_account,
                "serviceAccountName": self.service_account,
                "terminationGracePeriodSeconds": self.grace,
                "tolerations": [
                    {
                        "effect": "NoExecute",
                        "key": "node.kubernetes.io/not-ready",
                        "operator": "Exists",
                        "tolerationSeconds": 300,
                    },
                    {
                        "effect": "NoExecute",
                        "key": "node.kubernetes.io/unreachable",
                        "operator": "Exists",
                        "tolerationSeconds": 300,
                    },
                ],
                "volumes": [
                    {
                        "name": self._token_volume(),
                        "projected": {
                            "defaultMode": 420,
                            "sources": [
                                {
                                    "serviceAccountToken": {
                                        "expirationSeconds": 3607,
                                        "path": "token",
                                    }
                                },
                                {
                                    "configMap": {
                                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                        "name": "kube-root-ca.crt",
                                    }
                                },
                                {
                                    "downwardAPI": {
                                        "items": [
                                            {
                                                "fieldRef": {
                                                    "apiVersion": "v1",
                                                    "fieldPath": "metadata.namespace",
                                                },
                                                "path": "namespace",
                                            }
                                        ]
                                    }
                                },
                            ],
                        },
                    }
                ],
            }
        )
        spec.update(self.spec_extra)
        if now >= self.scheduled:
            spec["nodeName"] = self.node
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": spec,
            "status": self._status(now),
        }

    def _status(self, now: datetime) -> Obj:
        qos = "Burstable" if any(c.resources for c in self.containers) else "BestEffort"
        if now < self.scheduled:
            return {"phase": "Pending", "qosClass": qos}
        kubelet = at(self.scheduled, 1)
        scheduled_cond = {
            "lastProbeTime": None,
            "lastTransitionTime": k8s_time(self.scheduled),
            "status": "True",
            "type": "PodScheduled",
        }
        if now < kubelet:
            return {"conditions": [scheduled_cond], "phase": "Pending", "qosClass": qos}
        inits_done = max((c.finished for c in self.init_containers if c.finished), default=kubelet)
        initialized = (
            all(c.finished and c.finished <= now for c in self.init_containers)
            if self.init_containers
            else True
        )
        ready = self.ready_at()
        done = self.done_at()
        is_ready = ready is not None and ready <= now and not (done is not None and done <= now)
        finished = done is not None and done <= now
        if finished:
            ready_reason: Obj = {"reason": "PodCompleted"}
            ready_time = done
        elif is_ready:
            ready_reason, ready_time = {}, ready
        else:
            ready_reason, ready_time = {"reason": "ContainersNotReady"}, kubelet
        sandbox_ready = now >= at(kubelet, 1) and not finished
        if finished:
            sandbox_time = done
        elif sandbox_ready:
            sandbox_time = at(kubelet, 1)
        else:
            sandbox_time = kubelet
        conditions = [
            {
                "lastProbeTime": None,
                "lastTransitionTime": k8s_time(sandbox_time),  # type: ignore[arg-type]
                "status": "True" if sandbox_ready else "False",
                "type": "PodReadyToStartContainers",
            },
            {
                "lastProbeTime": None,
                "lastTransitionTime": k8s_time(inits_done if initialized else kubelet),
                "status": "True" if initialized else "False",
                **({} if initialized else {"reason": "ContainersNotInitialized"}),
                "type": "Initialized",
            },
            *(
                {
                    "lastProbeTime": None,
                    "lastTransitionTime": k8s_time(ready_time),  # type: ignore[arg-type]
                    "status": "True" if is_ready else "False",
                    **ready_reason,
                    "type": kind,
                }
                for kind in ("Ready", "ContainersReady")
            ),
            scheduled_cond,
        ]
        for cond in conditions[2:4]:
            if not is_ready:
                cond["message"] = (
                    "containers with unready status: ["
                    + " ".join(c.name for c in self.containers if not _running(c, now))
                    + "]"
                )
        waiting = (
            "PodInitializing" if self.init_containers and not initialized else ("ContainerCreating")
        )
        status: Obj = {"conditions": conditions}
        status["containerStatuses"] = [c.status(now, self.uid, waiting) for c in self.containers]
        status["hostIP"] = self.host_ip
        status["hostIPs"] = [{"ip": self.host_ip}]
        if self.init_containers:
            status["initContainerStatuses"] = [
                c.status(now, self.uid, "PodInitializing") for c in self.init_containers
            ]
        if finished:
            failed = any(c.exit_code != 0 for c in self.containers)
            phase = "Failed" if failed else "Succeeded"
        elif initialized and any(c.started and c.started <= now for c in self.containers):
            phase = "Running"
        else:
            phase = "Pending"
        status["phase"] = phase
        if now >= at(kubelet, 1):
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        status["qosClass"] = qos
        status["startTime"] = k8s_time(kubelet)
        return status

    def emit(self, capture: Capture, moments: Iterable[datetime], lag: float = 0.3) -> None:
        """ADDED at creation, MODIFIED at each moment (watch delivery `lag` s later)."""
        capture.pods[(self.namespace, self.name)] = self.expected_key
        capture.k8s(at(self.created, lag), "ADDED", self.object(self.created))
        for moment in moments:
            capture.k8s(at(moment, lag), "MODIFIED", self.object(moment))

    def emit_deleted(self, capture: Capture, moment: datetime, lag: float = 0.3) -> None:
        capture.k8s(at(moment, lag), "DELETED", self.object(moment))

    def lifecycle_moments(self) -> list[datetime]:
        """Every moment the kubelet/scheduler would report a change, in order."""
        moments = {self.scheduled, at(self.scheduled, 2)}
        for c in [*self.init_containers, *self.containers]:
            if c.started:
                moments.add(c.started)
            if c.finished:
                moments.add(c.finished)
        if self.deletion_requested:
            moments.add(self.deletion_requested)
        return sorted(moments)


def _running(c: Container, now: datetime) -> bool:
    return bool(c.started and c.started <= now and not (c.finished and c.finished <= now))


def core_event(
    namespace: str,
    involved: Obj,
    reason: str,
    message: str,
    moment: datetime,
    component: str,
    host: str | None = None,
    kind: str = "Normal",
    field_path: str | None = None,
) -> Obj:
    name = f"{involved['name']}.{hexid(16, involved['uid'], reason, k8s_time(moment), message)}"
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid("event", name),
            "resourceVersion": "0",
            "creationTimestamp": k8s_time(moment),
        },
        "involvedObject": dict(involved),
        "reason": reason,
        "message": message,
        "type": kind,
    }
    if field_path:
        obj["involvedObject"]["fieldPath"] = field_path
    if component == "default-scheduler":
        # The scheduler writes events.k8s.io/v1 Events: eventTime set, the legacy times empty.
        obj.update(
            {
                "source": {},
                "firstTimestamp": None,
                "lastTimestamp": None,
                "eventTime": micro_time(moment),
                "action": "Binding",
                "reportingComponent": "default-scheduler",
                "reportingInstance": f"default-scheduler-{host or 'control-plane'}",
            }
        )
    else:
        source: Obj = {"component": component}
        if host:
            source["host"] = host
        obj.update(
            {
                "source": source,
                "firstTimestamp": k8s_time(moment),
                "lastTimestamp": k8s_time(moment),
                "count": 1,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": host or "",
            }
        )
    return obj


def involved(obj_kind: str, api_version: str, namespace: str, name: str, obj_uid: str) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": obj_kind,
        "name": name,
        "namespace": namespace,
        "uid": obj_uid,
    }


def pod_ref(pod: Pod) -> Obj:
    """The involvedObject of a pod's Events (the kubelet and scheduler set resourceVersion)."""
    ref = involved("Pod", "v1", pod.namespace, pod.name, pod.uid)
    ref["resourceVersion"] = "0"
    return ref


def pod_scheduled(capture: Capture, pod: Pod) -> None:
    """The scheduler's Scheduled Event for `pod`."""
    capture.k8s(
        at(pod.scheduled, 0.2),
        "ADDED",
        core_event(
            pod.namespace,
            pod_ref(pod),
            "Scheduled",
            f"Successfully assigned {pod.namespace}/{pod.name} to {pod.node}",
            pod.scheduled,
            "default-scheduler",
        ),
    )


def pod_events(capture: Capture, pod: Pod, pulled: dict[str, bool] | None = None) -> None:
    """The Events of a real pod start: Scheduled, then per container Pulled/Created/Started."""
    ref = pod_ref(pod)
    pod_scheduled(capture, pod)
    for index, c in enumerate([*pod.init_containers, *pod.containers]):
        if c.started is None:
            continue
        spec_list = "initContainers" if c in pod.init_containers else "containers"
        position = index if spec_list == "initContainers" else index - len(pod.init_containers)
        path = f"spec.{spec_list}{{{c.name}}}"
        started = c.started
        cached = (pulled or {}).get(c.name, True)
        message = (
            f'Container image "{c.image}" already present on machine'
            if cached
            else f'Successfully pulled image "{c.image}" in 3.412s (3.412s including waiting). '
            f"Image size: 148210446 bytes."
        )
        moment = at(started, -1) if position >= 0 else started
        for reason, text in (
            ("Pulled", message),
            ("Created", f"Created container {c.name}"),
            ("Started", f"Started container {c.name}"),
        ):
            capture.k8s(
                at(moment, 0.25),
                "ADDED",
                core_event(
                    pod.namespace, ref, reason, text, moment, "kubelet", pod.node, field_path=path
                ),
            )


def emit_pod(capture: Capture, pod: Pod, pulled: dict[str, bool] | None = None) -> None:
    """A pod that runs through its timeline: its watch events and the Events of its start."""
    pod.emit(capture, pod.lifecycle_moments())
    pod_events(capture, pod, pulled)


def owner_ref(kind: str, api_version: str, name: str, owner_uid: str) -> Obj:
    """The ownerReference a controller sets on what it creates."""
    return {
        "apiVersion": api_version,
        "blockOwnerDeletion": True,
        "controller": True,
        "kind": kind,
        "name": name,
        "uid": owner_uid,
    }


def job_pod_labels(job_uid: str, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A Job pod's labels: the template's own (`extra`), then those the Job controller adds."""
    return {
        **(extra or {}),
        "batch.kubernetes.io/controller-uid": job_uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": job_uid,
        "job-name": name,
    }


def cronjob_job_name(cron: str, scheduled: datetime) -> str:
    """The name the CronJob controller gives the Job it creates for the `scheduled` time."""
    return f"{cron}-{int(scheduled.timestamp() // 60)}"


def job_pod(
    namespace: str,
    job: str,
    suffix: str,
    containers: list[Container],
    *,
    node: str,
    pod_ip: str,
    host_ip: str,
    created: datetime,
    scheduled: datetime,
    extra_labels: dict[str, str] | None = None,
) -> Pod:
    """The pod `job-suffix` the Job controller creates for Job `job`: the labels it gives Job
    pods, owned by the Job, correlated by batch.kubernetes.io/job-name (key job:<ns>/<job>)."""
    job_uid = uid("job", namespace, job)
    return Pod(
        namespace=namespace,
        name=f"{job}-{suffix}",
        labels=job_pod_labels(job_uid, job, extra_labels),
        node=node,
        pod_ip=pod_ip,
        host_ip=host_ip,
        created=created,
        scheduled=scheduled,
        containers=containers,
        owner=owner_ref("Job", "batch/v1", job, job_uid),
        expected_key=f"job:{namespace}/{job}",
    )


@dataclass
class Job:
    namespace: str
    name: str
    labels: dict[str, str]
    created: datetime
    template_labels: dict[str, str]
    pod_spec: Obj
    started: datetime
    ready: datetime | None = None
    finished: datetime | None = None
    succeeded: bool = True
    annotations: dict[str, str] = field(default_factory=dict)
    owner: Obj | None = None
    backoff_limit: int = 0
    active_deadline_s: int | None = None
    # why the controller fails it (DeadlineExceeded when activeDeadlineSeconds ran out)
    failure_reason: str = "BackoffLimitExceeded"
    failure_message: str = "Job has reached the specified backoff limit"
    expected_key: str | None = None

    @classmethod
    def for_pod(
        cls,
        pod: Pod,
        created: datetime,
        labels: dict[str, str] | None = None,
        **fields: Any,
    ) -> Self:
        """The Job (started when `created`) whose controller made `pod` (see `job_pod`): its
        template is the pod's labels and the spec as submitted, without what the API server
        and the scheduler add to a pod (node, service account alias, token volume)."""
        assert pod.owner is not None and pod.owner["kind"] == "Job"
        spec = {
            k: v
            for k, v in pod.object(pod.created)["spec"].items()
            if k not in ("nodeName", "serviceAccount", "volumes")
        }
        spec["containers"] = [
            {k: v for k, v in c.items() if k != "volumeMounts"} for c in spec["containers"]
        ]
        return cls(
            namespace=pod.namespace,
            name=pod.owner["name"],
            # no labels given: batch/v1 defaults them from the template
            labels=dict(pod.labels) if labels is None else labels,
            created=created,
            template_labels=dict(pod.labels),
            pod_spec=spec,
            started=created,
            expected_key=pod.expected_key,
            **fields,
        )

    @property
    def uid(self) -> str:
        return uid("job", self.namespace, self.name)

    def object(self, now: datetime) -> Obj:
        metadata = object_meta(self, generation=1)
        spec: Obj = {
            "backoffLimit": self.backoff_limit,
            "completionMode": "NonIndexed",
            "completions": 1,
            "manualSelector": False,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {
                "matchLabels": {"batch.kubernetes.io/controller-uid": self.uid},
            },
            "suspend": False,
            "template": {
                "metadata": {"creationTimestamp": None, "labels": dict(self.template_labels)},
                "spec": self.pod_spec,
            },
        }
        if self.active_deadline_s is not None:
            spec["activeDeadlineSeconds"] = self.active_deadline_s
        status: Obj = {}
        if now >= self.started:
            status = {
                "startTime": k8s_time(self.started),
                "terminating": 0,
                "uncountedTerminatedPods": {},
            }
            if self.finished is not None and now >= self.finished:
                failure = (
                    {}
                    if self.succeeded
                    else {"message": self.failure_message, "reason": self.failure_reason}
                )
                # The controller sets the target condition first, then the final one.
                status["conditions"] = [
                    {
                        "lastProbeTime": k8s_time(self.finished),
                        "lastTransitionTime": k8s_time(self.finished),
                        "status": "True",
                        "type": kind,
                        **failure,
                    }
                    for kind in (
                        ("SuccessCriteriaMet", "Complete")
                        if self.succeeded
                        else ("FailureTarget", "Failed")
                    )
                ]
                status["ready"] = 0
                if self.succeeded:
                    status["completionTime"] = k8s_time(self.finished)
                    status["succeeded"] = 1
                else:
                    status["failed"] = 1
            else:
                status["active"] = 1
                status["ready"] = 1 if self.ready and now >= self.ready else 0
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": spec,
            "status": status,
        }

    def ref(self) -> Obj:
        return involved("Job", "batch/v1", self.namespace, self.name, self.uid)


def job_created(capture: Capture, job: Job, pod: Pod) -> None:
    """A new Job as the watch sees it, and the Job controller starting it and creating `pod`."""
    added = job.object(job.created)
    added["status"] = {}  # the controller has not looked at it yet
    capture.k8s(at(job.created, 0.2), "ADDED", added)
    capture.k8s(at(job.started, 0.3), "MODIFIED", job.object(job.started))
    capture.k8s(
        at(job.created, 0.4),
        "ADDED",
        core_event(
            job.namespace,
            job.ref(),
            "SuccessfulCreate",
            f"Created pod: {pod.name}",
            job.created,
            "job-controller",
        ),
    )


def job_finished(capture: Capture, job: Job) -> None:
    """The Job controller marking `job` finished: its last update and the Event of why."""
    assert job.finished is not None
    capture.k8s(at(job.finished, 0.3), "MODIFIED", job.object(job.finished))
    reason, text = (
        ("Completed", "Job completed")
        if job.succeeded
        else (job.failure_reason, job.failure_message)
    )
    capture.k8s(
        at(job.finished, 0.5),
        "ADDED",
        core_event(
            job.namespace,
            job.ref(),
            reason,
            text,
            job.finished,
            "job-controller",
            kind="Normal" if job.succeeded else "Warning",
        ),
    )


def job_scenario_objects(cap: Capture, job: Job, pod: Pod, pulled: bool = True) -> None:
    """A Job's watch events and its pod's, as a real run of the Job controller produces them."""
    job_created(cap, job, pod)
    emit_pod(cap, pod, {c.name: pulled for c in pod.containers})
    if job.ready:
        cap.k8s(at(job.ready, 0.6), "MODIFIED", job.object(job.ready))
    if job.finished:
        job_finished(cap, job)


# --------------------------------------------------------------------------------------------
# Tekton TaskRun pods


TEKTON_RELEASE = "v0.62.3"
ENTRYPOINT_IMAGE = (
    "ghcr.io/tektoncd/pipeline/entrypoint-bff0a22da108bc2f16c818c97641a296:v0.62.3"
    "@sha256:9fbd7dd1d6bc1ac8de9ec3d0f8f7f1b4d4e8c02e0f3c8c6a7b5d0e1f2a3b4c5d"
)
BUSYBOX_IMAGE = (
    "cgr.dev/chainguard/busybox@sha256:"
    "19f02276bf8dbdd62f069b922f10c65262cc34b710eea26ff928129a736be791"
)


def tekton_pod(
    pipeline_run: str,
    task: str,
    pipeline_task: str,
    steps_: list[Container],
    created: datetime,
    node: str,
    ip: str,
    task_annotations: dict[str, str],
    *,
    namespace: str = "ci",
    pipeline: str = "shop-build",
) -> Pod:
    """A TaskRun's pod as Tekton creates it: init containers that prepare the steps, one
    container per step run through Tekton's entrypoint, the tekton.dev labels."""
    task_run = f"{pipeline_run}-{pipeline_task}"
    first_start = min(c.started for c in steps_ if c.started)
    prepare = Container(
        name="prepare",
        image=ENTRYPOINT_IMAGE,
        image_id=ENTRYPOINT_IMAGE.split("@")[0],
        command=["/ko-app/entrypoint", "init", "/ko-app/entrypoint", "/tekton/bin/entrypoint"]
        + [f"step-{c.name[5:]}" for c in steps_],
        started=at(first_start, -3),
        finished=at(first_start, -3),
    )
    place_scripts = Container(
        name="place-scripts",
        image=BUSYBOX_IMAGE,
        image_id=BUSYBOX_IMAGE,
        command=["sh"],
        args=[
            "-c",
            'scriptfile="/tekton/scripts/script-0-'
            + hexid(5, task_run)
            + '"\ntouch ${scriptfile} && chmod +x '
            "${scriptfile}\ncat > ${scriptfile} << '_EOF_'\n...\n_EOF_\n",
        ],
        started=at(first_start, -2),
        finished=at(first_start, -2),
    )
    for index, c in enumerate(steps_):
        c.command = ["/tekton/bin/entrypoint"]
        c.args = [
            *(
                ["-wait_file", "/tekton/downward/ready", "-wait_file_content"]
                if index == 0
                else ["-wait_file", f"/tekton/run/{index - 1}/out"]
            ),
            "-post_file",
            f"/tekton/run/{index}/out",
            "-termination_path",
            "/tekton/termination",
            "-step_metadata_dir",
            f"/tekton/run/{index}/status",
            "-entrypoint",
            f"/tekton/scripts/script-{index}-{hexid(5, task_run, c.name)}",
            "--",
        ]
        c.extra = {"workingDir": "/workspace/source"}
        # Tekton's entrypoint reports when the step really began (the container starts early
        # and waits for its predecessor).
        begin = at(c.started, 1) if index == 0 else steps_[index - 1].finished
        c.message = json.dumps(
            [{"key": "StartedAt", "value": micro_time(begin).replace("000Z", "Z"), "type": 3}],
            separators=(",", ":"),
        )
    pipeline_run_uid = uid("pipelinerun", namespace, pipeline_run)
    task_run_uid = uid("taskrun", namespace, task_run)
    return Pod(
        namespace=namespace,
        name=f"{task_run}-pod",
        labels={
            "app.kubernetes.io/managed-by": "tekton-pipelines",
            "app.kubernetes.io/version": task_annotations.pop("version"),
            "tekton.dev/memberOf": "tasks",
            "tekton.dev/pipeline": pipeline,
            "tekton.dev/pipelineRun": pipeline_run,
            "tekton.dev/pipelineRunUID": pipeline_run_uid,
            "tekton.dev/pipelineTask": pipeline_task,
            "tekton.dev/task": task,
            "tekton.dev/taskRun": task_run,
            "tekton.dev/taskRunUID": task_run_uid,
        },
        annotations={
            "pipeline.tekton.dev/release": TEKTON_RELEASE,
            "tekton.dev/ready": "READY",
            **task_annotations,
        },
        owner=owner_ref("TaskRun", "tekton.dev/v1", task_run, task_run_uid),
        node=node,
        pod_ip=ip,
        host_ip="10.0.16.22",
        created=created,
        scheduled=at(created, 1),
        init_containers=[prepare, place_scripts],
        containers=steps_,
        service_account="pipeline",
        expected_key=f"tekton:{namespace}/{pipeline_run}",
    )


# --------------------------------------------------------------------------------------------
# background activity (no run): a Deployment rollout in another namespace


KSM_IMAGE = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0"
KSM_IMAGE_ID = (
    "registry.k8s.io/kube-state-metrics/kube-state-metrics@sha256:"
    "9e4f5a6b4c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4"
)


def background_rollout(
    capture: Capture,
    start: datetime,
    node: str,
    ip: str,
    *,
    namespace: str = "monitoring",
    app: str = "kube-state-metrics",
    image: str = KSM_IMAGE,
    image_id: str = KSM_IMAGE_ID,
) -> None:
    """A Deployment rolling one pod on `node` (pod IP `ip`) from `start`: Events on the
    Deployment and ReplicaSet, the pod's start. Nothing here carries a correlation label, so it
    belongs to no run (by default kube-state-metrics in monitoring, as in every scenario)."""
    template_hash = k8s_suffix(10, app, image)
    rs_name = f"{app}-{template_hash}"
    pod_name = f"{rs_name}-{k8s_suffix(5, app, k8s_time(start))}"
    deploy_uid = uid("deployment", namespace, app)
    rs_uid = uid("replicaset", namespace, rs_name)
    capture.k8s(
        at(start, 0.2),
        "ADDED",
        core_event(
            namespace,
            involved("Deployment", "apps/v1", namespace, app, deploy_uid),
            "ScalingReplicaSet",
            f"Scaled up replica set {rs_name} to 1",
            start,
            "deployment-controller",
        ),
    )
    created = at(start, 1)
    capture.k8s(
        at(created, 0.2),
        "ADDED",
        core_event(
            namespace,
            involved("ReplicaSet", "apps/v1", namespace, rs_name, rs_uid),
            "SuccessfulCreate",
            f"Created pod: {pod_name}",
            created,
            "replicaset-controller",
        ),
    )
    pod = Pod(
        namespace=namespace,
        name=pod_name,
        labels={
            "app.kubernetes.io/instance": app,
            "app.kubernetes.io/name": app,
            "pod-template-hash": template_hash,
        },
        node=node,
        pod_ip=ip,
        host_ip="10.0.12.31",
        created=created,
        scheduled=at(created, 1),
        containers=[
            Container(
                name=app,
                image=image,
                image_id=image_id,
                args=["--port=8080"],
                started=at(created, 5),
                resources={
                    "limits": {"memory": "256Mi"},
                    "requests": {"cpu": "50m", "memory": "128Mi"},
                },
                extra={
                    "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                },
            )
        ],
        owner=owner_ref("ReplicaSet", "apps/v1", rs_name, rs_uid),
        restart_policy="Always",
        expected_key=None,
    )
    emit_pod(capture, pod)


# --------------------------------------------------------------------------------------------
# GitHub payloads from the corpus


def corpus(path: str) -> Obj:
    payload: Obj = json.loads((GITHUB_CORPUS / path).read_text())
    return payload


def replace_strings(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in mapping.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [replace_strings(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: replace_strings(v, mapping) for k, v in value.items()}
    return value


RUN_TEMPLATE = "workflow_run/completed.payload.json"
JOB_TEMPLATE = "workflow_job/completed.success.with-organization.payload.json"
TEMPLATE_RUN_ID = "289782451"
TEMPLATE_SUITE_ID = "1291536064"


@dataclass
class GithubRun:
    run_id: int
    run_number: int
    workflow: str
    workflow_id: int
    path: str
    branch: str
    sha: str
    message: str
    check_suite_id: int
    created: datetime
    event: str = "push"

    @property
    def repo(self) -> str:
        name: str = corpus(RUN_TEMPLATE)["repository"]["full_name"]
        return name

    @property
    def sentinel_id(self) -> str:
        return f"github:{self.repo}:{self.run_id}:1"

    def body(
        self,
        action: str,
        status: str,
        conclusion: str | None,
        updated: datetime,
        run_started: datetime,
    ) -> Obj:
        payload: Obj = replace_strings(
            corpus(RUN_TEMPLATE),
            {
                f"runs/{TEMPLATE_RUN_ID}": f"runs/{self.run_id}",
                f"check-suites/{TEMPLATE_SUITE_ID}": f"check-suites/{self.check_suite_id}",
                "workflows/2823525": f"workflows/{self.workflow_id}",
            },
        )
        payload["action"] = action
        run = payload["workflow_run"]
        run.update(
            {
                "id": self.run_id,
                "name": self.workflow,
                "node_id": "WFR_kwLO" + hexid(12, str(self.run_id)),
                "check_suite_id": self.check_suite_id,
                "check_suite_node_id": "CS_kwDO" + hexid(12, str(self.check_suite_id)),
                "head_branch": self.branch,
                "head_sha": self.sha,
                "path": self.path,
                "display_title": self.message,
                "run_number": self.run_number,
                "event": self.event,
                "status": status,
                "conclusion": conclusion,
                "workflow_id": self.workflow_id,
                "run_attempt": 1,
                "created_at": gh_time(self.created),
                "updated_at": gh_time(updated),
                "run_started_at": gh_time(run_started),
            }
        )
        run["head_commit"] = {
            **run["head_commit"],
            "id": self.sha,
            "tree_id": hexid(40, "tree", self.sha),
            "message": self.message,
            "timestamp": gh_time(at(self.created, -40)),
        }
        payload["workflow"] = {
            **payload["workflow"],
            "id": self.workflow_id,
            "name": self.workflow,
            "path": self.path,
            "node_id": "W_kwDO" + hexid(12, str(self.workflow_id)),
        }
        payload["workflow"] = replace_strings(
            payload["workflow"],
            {".github/workflows/test.yml": self.path, "/test/": f"/{self.workflow}/"},
        )
        return payload


@dataclass
class GithubJob:
    run: GithubRun
    job_id: int
    name: str
    labels: list[str]
    runner_name: str
    runner_id: int
    runner_group: str
    runner_group_id: int

    def body(
        self,
        action: str,
        status: str,
        conclusion: str | None,
        created: datetime,
        started: datetime,
        completed: datetime | None,
        steps: list[Obj],
    ) -> Obj:
        template = corpus(JOB_TEMPLATE)
        run_payload = corpus(RUN_TEMPLATE)
        repo = self.run.repo
        job = template["workflow_job"]
        job.update(
            {
                "id": self.job_id,
                "run_id": self.run.run_id,
                "run_url": f"https://api.github.com/repos/{repo}/actions/runs/{self.run.run_id}",
                "run_attempt": 1,
                "node_id": "CR_kwDO" + hexid(16, str(self.job_id)),
                "head_sha": self.run.sha,
                "head_branch": self.run.branch,
                "url": f"https://api.github.com/repos/{repo}/actions/jobs/{self.job_id}",
                "html_url": f"https://github.com/{repo}/actions/runs/{self.run.run_id}"
                f"/job/{self.job_id}",
                "status": status,
                "conclusion": conclusion,
                "created_at": gh_time(created),
                "started_at": gh_time(started),
                "completed_at": gh_time(completed) if completed else None,
                "name": self.name,
                "steps": steps,
                "check_run_url": f"https://api.github.com/repos/{repo}/check-runs/{self.job_id}",
                "labels": list(self.labels),
                "workflow_name": self.run.workflow,
            }
        )
        if status == "queued":
            # Not assigned yet: GitHub sends the runner fields as null.
            job.update(
                {
                    "runner_id": None,
                    "runner_name": None,
                    "runner_group_id": None,
                    "runner_group_name": None,
                }
            )
        else:
            job.update(
                {
                    "runner_id": self.runner_id,
                    "runner_name": self.runner_name,
                    "runner_group_id": self.runner_group_id,
                    "runner_group_name": self.runner_group,
                }
            )
        template["action"] = action
        template["repository"] = run_payload["repository"]
        template["organization"] = run_payload["organization"]
        return template

    def queued(self, moment: datetime) -> Obj:
        """The queued delivery: no runner assigned, no steps."""
        return self.body("queued", "queued", None, moment, moment, None, [])

    def picked_up(self, queued: datetime, started: datetime) -> Obj:
        """The in_progress delivery when a runner takes the job: only "Set up job" running."""
        setup = steps([("Set up job", "in_progress", None, started, None)])
        return self.body("in_progress", "in_progress", None, queued, started, None, setup)


def steps(spec: list[tuple[str, str, str | None, datetime | None, datetime | None]]) -> list[Obj]:
    return [
        {
            "name": name,
            "status": status,
            "conclusion": conclusion,
            "number": number,
            "started_at": gh_step_time(start) if start else None,
            "completed_at": gh_step_time(end) if end else None,
        }
        for number, (name, status, conclusion, start, end) in enumerate(spec, start=1)
    ]


def completed_steps(start: datetime, durations: list[tuple[str, float]]) -> list[Obj]:
    """Steps that all succeeded, one after the other from `start`: (name, seconds) each."""
    spec: list[tuple[str, str, str | None, datetime | None, datetime | None]] = []
    moment = start
    for name, seconds in durations:
        end = at(moment, seconds)
        spec.append((name, "completed", "success", moment, end))
        moment = end
    return steps(spec)


# --------------------------------------------------------------------------------------------
# pods of the CI systems


ARC_VERSION = "0.10.1"
RUNNER_IMAGE = "ghcr.io/actions/actions-runner:2.321.0"
RUNNER_IMAGE_ID = (
    "ghcr.io/actions/actions-runner@sha256:"
    "27ac2e8b31d8c8a8bd3a5ebe8a3b0a63a4f1c5c3b1ef0ad4fa0d3f3c1a4f8ab2"
)


def arc_runner_pod(
    name: str,
    created: datetime,
    started: datetime,
    finished: datetime | None,
    node: str,
    ip: str,
    deletion: datetime | None,
) -> Pod:
    scale_set = "arc-runner-set"
    return Pod(
        namespace="arc-runners",
        name=name,
        labels={
            "actions-ephemeral-runner": "True",
            "actions.github.com/organization": "octo-org",
            "actions.github.com/repository": "octo-repo",
            "actions.github.com/scale-set-name": scale_set,
            "actions.github.com/scale-set-namespace": "arc-runners",
            "app.kubernetes.io/component": "runner",
            "app.kubernetes.io/instance": scale_set,
            "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/name": scale_set,
            "app.kubernetes.io/part-of": "gha-runner-scale-set",
            "app.kubernetes.io/version": ARC_VERSION,
            "helm.sh/chart": f"gha-rs-{ARC_VERSION}",
            "pod-template-hash": "6b8b9c7d5f",
        },
        annotations={
            "actions.github.com/patch-id": "0",
            "actions.github.com/runner-group-name": "Default",
            "actions.github.com/runner-scale-set-name": scale_set,
            "actions.github.com/runner-spec-hash": "75f975979",
        },
        owner=owner_ref(
            "EphemeralRunner", "actions.github.com/v1alpha1", name, uid("ephemeralrunner", name)
        ),
        node=node,
        pod_ip=ip,
        host_ip="10.0.14.7",
        created=created,
        scheduled=at(created, 1),
        containers=[
            Container(
                name="runner",
                image=RUNNER_IMAGE,
                image_id=RUNNER_IMAGE_ID,
                command=["/home/runner/run.sh"],
                env=[
                    {
                        "name": "ACTIONS_RUNNER_INPUT_JITCONFIG",
                        "valueFrom": {"secretKeyRef": {"key": "jitToken", "name": name}},
                    },
                    {
                        "name": "GITHUB_ACTIONS_RUNNER_EXTRA_USER_AGENT",
                        "value": f"actions-runner-controller/{ARC_VERSION}",
                    },
                ],
                started=started,
                finished=finished,
            )
        ],
        service_account="arc-runner-set-gha-rs-no-permission",
        deletion_requested=deletion,
        expected_key=f"github-runner:{name}",
    )


def runner_says(capture: Capture, pod: Pod, moment: datetime, text: str) -> None:
    """A line of the actions runner's own log (it stamps its lines) in `pod`'s runner container."""
    capture.log(moment, pod, "runner", f"{moment.strftime('%Y-%m-%d %H:%M:%SZ')}: {text}")


def runner_online(capture: Capture, pod: Pod) -> None:
    """What the runner prints once its container has started: its banner, then that it
    listens for jobs."""
    first = pod.containers[0].started
    assert first is not None
    banner = ["", "\u221a Connected to GitHub", "", "Current runner version: '2.321.0'"]
    capture.lines(at(first, 1), 0.1, pod, "runner", banner)
    runner_says(capture, pod, at(first, 2), "Listening for Jobs")


# --------------------------------------------------------------------------------------------
# log lines in the shapes of tests/data/test-logs


def pytest_line(nodeid: str, outcome: str, percent: int) -> str:
    left = f"{nodeid} {outcome}"
    right = f"[{percent:3d}%]"
    return left + " " * max(1, 80 - len(left) - len(right)) + right


def pytest_banner(text: str, char: str = "=") -> str:
    text = f" {text} "
    side = (80 - len(text)) // 2
    return char * side + text + char * (80 - side - len(text))


def pytest_header(python: str, executable: str, rootdir: str) -> list[str]:
    """The first lines of a `pytest -v` session (pytest 8.3.4 with rerunfailures and timeout)."""
    return [
        pytest_banner("test session starts"),
        f"platform linux -- Python {python}, pytest-8.3.4, pluggy-1.5.0 -- {executable}",
        "cachedir: .pytest_cache",
        f"rootdir: {rootdir}",
        "configfile: pyproject.toml",
        "plugins: rerunfailures-14.0, timeout-2.3.1",
    ]


def source_lines(name: str) -> list[str]:
    return (TEST_LOGS / name).read_text(encoding="utf-8").splitlines()


def surefire_line(prefix: str) -> str:
    """The line of surefire-3.x.log that starts with `prefix` once colours are removed."""
    for line in source_lines("surefire-3.x.log"):
        if ANSI.sub("", line).startswith(prefix):
            return line
    raise KeyError(prefix)


# --------------------------------------------------------------------------------------------
# writing a scenario


@dataclass
class BaseScenario:
    """What every scenario has; a generator's Scenario adds what its --check needs and says
    what NAME.expected.json holds."""

    name: str
    description: str
    capture: Capture
    config: Obj

    def expected(self) -> Obj:
        raise NotImplementedError


def write(scenario: BaseScenario, directory: Path, generator: str) -> None:
    """NAME.jsonl, NAME.expected.json and NAME.config.yaml of `scenario` in `directory`."""
    capture = directory / f"{scenario.name}.jsonl"
    with capture.open("w", encoding="utf-8") as handle:
        for record in scenario.capture.ordered():
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    expected = directory / f"{scenario.name}.expected.json"
    expected.write_text(json.dumps(scenario.expected(), indent=2) + "\n", encoding="utf-8")
    header = "\n".join(
        "# " + line for line in wrap(f"Scenario {scenario.name}: {scenario.description}", 98)
    )
    body = yaml.safe_dump(scenario.config, sort_keys=False, default_flow_style=False, width=100)
    (directory / f"{scenario.name}.config.yaml").write_text(
        f"{header}\n# Generated by {generator}; edit that, not this file.\n{body}",
        encoding="utf-8",
    )


def wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current] if current else lines


# --------------------------------------------------------------------------------------------
# --check


class CheckFailed(AssertionError):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Written:
    """A scenario's files as --check reads them back."""

    settings: Settings
    records: list[WebhookRecord | K8sRecord | LogRecord]
    expected: Obj


def read_written(directory: Path, name: str) -> Written:
    """Scenario `name`'s files in `directory`, parsed the way sentinel reads them; the capture
    must hold records, in ts order."""
    from runtime.config import load_settings
    from schemas.capture import read_capture

    settings = load_settings(directory / f"{name}.config.yaml")
    records = list(read_capture(directory / f"{name}.jsonl"))
    expect(bool(records), f"{name}: empty capture")
    stamps = [r.ts for r in records]
    expect(stamps == sorted(stamps), f"{name}: records not ordered by ts")
    expected = json.loads((directory / f"{name}.expected.json").read_text())
    return Written(settings, records, expected)


def replayed_log_line(record: LogRecord) -> LogLine:
    """A captured log line as the log producer hands it on: read with the kubelet's timestamp
    prefix (what ``kubectl logs --timestamps`` shows), which gives its event time."""
    from producers.k8s.log_lines import to_log_line

    stamp = record.ts.isoformat().replace("+00:00", "Z")
    return to_log_line(
        record.namespace,
        record.pod,
        record.container,
        f"{stamp} {record.line}".encode(),
        record.ts,
        max_line_bytes=65536,
        correlation_key=record.correlation_key,
    )


# --------------------------------------------------------------------------------------------
# a generator's command line


S = TypeVar("S", bound=BaseScenario)


def run_generator(
    argv: list[str] | None,
    script: str,
    doc: str | None,
    scenarios: Sequence[Callable[[], S]],
    check: Callable[[S], list[str]],
) -> int:
    """A generator's command line: build `scenarios` (or the ones named), write each next to
    `script` (the generator's file), and with --check verify each with `check`, which returns
    notes and raises CheckFailed on a problem."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--check", action="store_true", help="verify after writing")
    parser.add_argument("names", nargs="*", help="only these scenarios")
    args = parser.parse_args(argv)
    path = Path(script).resolve()
    failures = 0
    for build in scenarios:
        if args.names and build.__name__ not in args.names:
            continue
        scenario = build()
        write(scenario, path.parent, path.name)
        print(f"wrote {scenario.name}: {len(scenario.capture.records)} records")
        if args.check:
            try:
                for note in check(scenario):
                    print(f"  ok: {note}")
            except CheckFailed as exc:
                failures += 1
                print(f"  FAILED: {exc}")
    return 1 if failures else 0
