"""`sentinel log-stream`: container logs of the pods that belong to runs, to `sentinel.logs`.

Pods are discovered with the same list-then-watch `Reflector` as `k8s-watch` (namespaces from
`k8s.namespaces`, selectors from `logs.label_selector` / `logs.field_selector`). A pod is
followed when it has a run correlation key (or, with `logs.only_correlated: false`, when the
selectors match it). Each of its containers gets a `ContainerFollower`:

- it reads ``GET .../pods/NAME/log?container=C&follow=true&timestamps=true`` and turns every
  line into a `LogLine` (`producers.log_lines.to_log_line`: timestamp, truncation, UTF-8);
- after a disconnect or a silent stream (`logs.silence_limit_s`) it reconnects with
  ``sinceTime`` = the second of the last line sent, and `ResumePoint` skips the lines already
  sent, so nothing is lost or repeated;
- before each connect it reads the pod's status: when the container restarted since the
  instance it was following, it first reads what is left of that instance with
  ``previous=true`` (kubelet keeps one previous instance; a container that restarts twice while
  no stream is open loses the middle instance), then follows the new one;
- at most `logs.max_streams` streams are open at once (the others wait for a slot), and lines
  go through a queue of `logs.queue_size`: when the producer falls behind, the readers block,
  stop reading the socket and TCP slows the server down, instead of memory growing.

With `logs.state_file`, the position of every container (last line handed to the producer,
and which instance it came from) is saved every `logs.checkpoint_s` and at shutdown, after the
producer flushed, with the logs topic's end offsets at that moment (the first checkpoint is
written before anything is published); a restarted `log-stream` resumes there, reading a
container's previous instance first if it restarted meanwhile, and does not publish again the
lines its predecessor published after that checkpoint: it reads them back from the topic
(`producers.published`) and skips each once when it reads it again from the pod.
Without it, a restart reads followed containers from the start.
Needs get on pods/log and get/list/watch on pods.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
from collections import Counter as CounterDict
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

from producers.k8s.leader import ElectionStatus, run_elected
from producers.k8s.log_lines import ResumePoint, log_key, split_lines, split_timestamp, to_log_line
from producers.k8s.objects import correlation_key
from producers.k8s.state_file import load_state, save_state
from producers.k8s.watch import Publisher, Reflector, collections
from producers.k8s.watch_state import Emit, backoff_delay
from producers.published import published_since, topic_ends
from producers.publisher import PublishError
from runtime.config import K8sKind, Settings
from runtime.troubleshooting import LOGS_NOT_STREAMING, see
from schemas.messages import LogLine

log = logging.getLogger("sentinel.log_stream")

LOG_LINES = Counter("sentinel_log_lines_total", "Log lines queued for publishing", ["truncated"])
LOG_STREAMS = Gauge("sentinel_log_streams_open", "Container log streams open now")
LOG_RECONNECTS = Counter("sentinel_log_reconnects_total", "Log streams reopened", ["reason"])

# Containers whose logs were read to the end, remembered so they are not read again.
DONE_REMEMBERED = 100_000
# A timestamp prefix is at most 36 bytes ("2024-01-01T00:00:00.123456789+00:00 ").
PREFIX_ROOM = 64


def container_statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = pod.get("status") or {}
    found: dict[str, Mapping[str, Any]] = {}
    for field in ("initContainerStatuses", "containerStatuses"):
        for item in status.get(field) or []:
            if isinstance(item, Mapping) and item.get("name"):
                found[str(item["name"])] = item
    return found


def has_started(status: Mapping[str, Any]) -> bool:
    """A container has a log once it has run: running or terminated now, or restarted before."""
    state = status.get("state") or {}
    return bool(state.get("running") or state.get("terminated") or status.get("restartCount"))


def will_run_again(pod: Mapping[str, Any], container: str) -> bool:
    """Whether this container may still write log lines (running, or going to restart)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    state = (container_statuses(pod).get(container) or {}).get("state") or {}
    terminated = state.get("terminated")
    if not terminated:
        return True
    init = {c.get("name") for c in (pod.get("status") or {}).get("initContainerStatuses") or []}
    if container in init and terminated.get("exitCode") == 0:
        return False  # an init container that succeeded is done for good
    policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    return bool(policy == "Always" or (policy == "OnFailure" and terminated.get("exitCode") != 0))


class ContainerFollower:
    """Follows one container's log across disconnects and restarts until the pod is gone."""

    def __init__(self, streamer: LogStreamer, namespace: str, pod: str, container: str) -> None:
        self.streamer = streamer
        self.namespace, self.pod, self.container = namespace, pod, container
        self.uid = ""
        self.correlation_key: str | None = None
        self.resume = ResumePoint()  # lines read (and queued)
        self.instance: int | None = None  # restartCount of the instance being followed
        # Lines handed to the producer, and the instance the last one came from: what the
        # state file records (queued lines are not safe yet).
        self.submitted = ResumePoint()
        self.submitted_instance: int | None = None
        self.streams = 0
        self.previous_reads = 0
        self._response: Any = None
        self._got_data = False

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod}/{self.container}"

    def interrupt(self) -> None:
        response = self._response
        shutdown = getattr(response, "shutdown", None)  # urllib3 >= 2.3
        if shutdown is not None:
            shutdown()  # unblocks a read in progress

    def run(self) -> None:
        try:
            self._follow()
        finally:
            self.streamer.finished(self)

    def _follow(self) -> None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError, ReadTimeoutError

        stop = self.streamer.stopping
        failures = 0
        while not stop.is_set():
            self._got_data = False
            try:
                pod = self.streamer.read_pod(self.namespace, self.pod)
                if pod is None:
                    return  # deleted: its logs are gone with it
                status = container_statuses(pod).get(self.container) or {}
                restarts = int(status.get("restartCount") or 0)
                if self.instance is None:
                    self.instance = restarts
                elif restarts > self.instance:
                    self._read_previous()
                    self.instance = restarts
                self._stream(self.instance, previous=False)
                pod = self.streamer.read_pod(self.namespace, self.pod)
                if pod is None or not will_run_again(pod, self.container):
                    return
                # The container exited and will restart: poll, more slowly each time, for
                # the new instance (nothing is lost by waiting: the log stays on the node).
                reason = "ended"
            except _Stopping:
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
                reason = f"http {exc.status}"  # e.g. 400 "waiting to start" (CrashLoopBackOff)
                if exc.status in (401, 403):
                    log.warning(
                        "%s: the API refused the log (%d %s): %s",
                        self,
                        exc.status,
                        exc.reason,
                        see(LOGS_NOT_STREAMING),
                    )
            except ReadTimeoutError:
                reason = "silent"
            except (HTTPError, OSError) as exc:
                reason = "connection"
                log.info("%s: log stream broke (%s), resuming", self, exc)
            if stop.is_set():
                return
            failures = 1 if self._got_data else failures + 1
            LOG_RECONNECTS.labels(reason).inc()
            k8s = self.streamer.settings.k8s
            delay = backoff_delay(failures, k8s.backoff_base_s, k8s.backoff_cap_s, random.random())
            stop.wait(delay)

    def _read_previous(self) -> None:
        """The rest of the instance that ended, if kubelet still has it."""
        from kubernetes.client.exceptions import ApiException

        assert self.instance is not None
        try:
            self._stream(self.instance, previous=True)
            self.previous_reads += 1
        except ApiException as exc:
            if exc.status != 400:  # 400: "previous terminated container ... not found"
                raise
            log.warning("%s: the previous instance's log is gone: %s", self, exc.reason)

    def _stream(self, instance: int, previous: bool) -> None:
        streamer = self.streamer
        with streamer.stream_slot():
            response = streamer.open_log(
                self.namespace, self.pod, self.container, previous, self.resume.since_time()
            )
            self._response = response
            self.streams += 1
            self.resume.new_stream()
            LOG_STREAMS.inc()
            try:
                chunks = response.stream(None, decode_content=False)
                for raw in split_lines(chunks, streamer.max_line_bytes + PREFIX_ROOM):
                    self._got_data = True
                    ts_ns, _ = split_timestamp(raw)
                    if not self.resume.admit(ts_ns):
                        continue
                    line = to_log_line(
                        self.namespace,
                        self.pod,
                        self.container,
                        raw,
                        datetime.now(UTC),
                        streamer.max_line_bytes,
                        self.correlation_key,
                    )
                    fresh = not streamer.published_before(line)
                    streamer.enqueue(_Queued(self, ts_ns, instance, line, fresh))
            finally:
                LOG_STREAMS.dec()
                self._response = None
                response.release_conn()


@dataclass(frozen=True, slots=True)
class _Queued:
    follower: ContainerFollower
    ts_ns: int | None
    instance: int
    line: LogLine
    publish: bool = True  # False: on the topic already; only the position moves past it


LogObserver = Callable[[LogLine], None]
STATE_VERSION = 1


class LogStreamer:
    """Discovers pods, runs one `ContainerFollower` per container, publishes their lines."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        api: Any,
        observers: Sequence[LogObserver] = (),
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.api = api
        self.observers = list(observers)
        self.topic = settings.topic_names.logs
        self.max_line_bytes = settings.logs.max_line_bytes
        self.stopping = threading.Event()
        self.queue: queue.Queue[_Queued] = queue.Queue(settings.logs.queue_size)
        self._slots = threading.BoundedSemaphore(settings.logs.max_streams)
        self._lock = threading.Lock()
        self.followers: dict[tuple[str, str, str], ContainerFollower] = {}
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._saved: dict[tuple[str, str], tuple[int, int, int]] = {}
        # stream key -> (event time, line) -> how many: published after the saved positions
        self._republished: dict[str, CounterDict[tuple[datetime, str]]] = {}
        self._restored = False
        self._undelivered = False
        self._load_state()
        self._threads: list[threading.Thread] = []
        self.published = 0
        self.delivery_failures = 0
        self.peak_queue = 0
        self.pod_watchers = [
            Reflector(
                c,
                settings.k8s,
                self._on_pod,
                settings.logs.label_selector,
                settings.logs.field_selector,
            )
            for c in collections(api, settings.k8s, [K8sKind.POD])
        ]

    # ---- pods -------------------------------------------------------------------------------

    def _on_pod(self, emit: Emit) -> None:
        if emit.event_type == "DELETED":
            return  # followers find out from the log API (404) once their stream ends
        pod = emit.obj
        key = correlation_key(pod, self.settings.k8s)
        if key is None and self.settings.logs.only_correlated:
            return
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        uid = str(meta.get("uid") or "")
        for container, status in container_statuses(pod).items():
            if not has_started(status):
                continue
            with self._lock:
                if (
                    (namespace, name, container) in self.followers
                    or (uid, container) in self._done
                    or self.stopping.is_set()
                ):
                    continue
                follower = ContainerFollower(self, namespace, name, container)
                follower.correlation_key = key
                follower.uid = uid
                saved = self._saved.pop((uid, container), None)
                if saved is not None:  # where the previous run of log-stream stopped
                    ts_ns, count, instance = saved
                    follower.resume = ResumePoint(ts_ns, count)
                    follower.submitted = ResumePoint(ts_ns, count)
                    follower.instance = follower.submitted_instance = instance
                self.followers[(namespace, name, container)] = follower
                thread = threading.Thread(target=follower.run, name=f"logs-{follower}", daemon=True)
                self._threads.append(thread)
            thread.start()

    def finished(self, follower: ContainerFollower) -> None:
        """A follower is done: forget it, but remember the container so it is not read again
        (the pod keeps sending MODIFIED events while it is being deleted)."""
        with self._lock:
            if self.stopping.is_set():
                return  # interrupted, not done: the final checkpoint saves its position
            self.followers.pop((follower.namespace, follower.pod, follower.container), None)
            self._done[(follower.uid, follower.container)] = None
            while len(self._done) > DONE_REMEMBERED:
                self._done.popitem(last=False)

    def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        k8s = self.settings.k8s
        try:
            response: Any = client.CoreV1Api(self.api).read_namespaced_pod(
                name,
                namespace,
                _preload_content=False,
                _request_timeout=(k8s.connect_timeout_s, k8s.silence_limit_s),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        try:
            pod: dict[str, Any] = json.loads(response.data)
        finally:
            response.release_conn()
        return pod

    # ---- log requests -----------------------------------------------------------------------

    def stream_slot(self) -> _Slot:
        return _Slot(self._slots, self.stopping)

    def open_log(
        self, namespace: str, pod: str, container: str, previous: bool, since_time: str | None
    ) -> Any:
        """The raw (urllib3) response of a log request, status checked.

        Built with the client's own request plumbing because its generated
        `read_namespaced_pod_log` has no ``sinceTime`` argument.
        """
        from kubernetes.client.exceptions import ApiException

        query: list[tuple[str, Any]] = [
            ("container", container),
            ("timestamps", True),
            ("follow", not previous),
        ]
        if previous:
            query.append(("previous", True))
        if since_time is not None:
            query.append(("sinceTime", since_time))
        request = self.api.param_serialize(
            method="GET",
            resource_path="/api/v1/namespaces/{namespace}/pods/{name}/log",
            path_params={"namespace": namespace, "name": pod},
            query_params=query,
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        timeout = (self.settings.k8s.connect_timeout_s, self.settings.logs.silence_limit_s)
        response = self.api.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    # ---- publishing -------------------------------------------------------------------------

    def enqueue(self, item: _Queued) -> None:
        """Hand a line to the publisher thread; blocks while the queue is full (backpressure)."""
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.2)
            except queue.Full:
                continue
            self.peak_queue = max(self.peak_queue, self.queue.qsize())
            return

    def _publish_loop(self) -> None:
        while not (self.stopping.is_set() and self.queue.empty()):
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            line = item.line
            if item.publish:
                for observer in self.observers:
                    observer(line)
                LOG_LINES.labels(str(line.truncated).lower()).inc()
                try:
                    self.publisher.send(
                        self.topic, log_key(line).encode(), line.to_bytes(), self._undelivered_line
                    )
                except PublishError as exc:
                    self._undelivered_line(exc)
            with self._lock:
                self.published += item.publish
                item.follower.submitted.admit(item.ts_ns)
                item.follower.submitted_instance = item.instance

    def _undelivered_line(self, error: PublishError) -> None:
        with self._lock:
            self.delivery_failures += 1
            self._undelivered = True
        log.error("log line not delivered: %s", error)

    # ---- state across restarts --------------------------------------------------------------

    def _load_state(self) -> None:
        data = load_state(self.settings.logs.state_file, STATE_VERSION)
        if data is None:
            return
        for uid, container, ts_ns, count, instance in data.get("positions") or []:
            self._saved[(uid, container)] = (ts_ns, count, instance)
        for uid, container in data.get("done") or []:
            self._done[(uid, container)] = None
        self._restored = True
        offsets = {int(p): int(o) for p, o in (data.get("offsets") or {}).items()}
        learnt = 0
        for value in published_since(self.settings, self.topic, offsets):
            try:
                line = LogLine.from_bytes(value)
            except ValueError as exc:  # not ours to judge here; the worker dead-letters it
                log.warning("skipping an unreadable message read back from %s: %s", self.topic, exc)
                continue
            seen = self._republished.setdefault(log_key(line), CounterDict())
            seen[(line.event_time, line.line)] += 1
            learnt += 1
        log.info("%d log lines were published after the saved positions", learnt)

    def published_before(self, line: LogLine) -> bool:
        """True, once per line read back, when `line` is one of them: published by the process
        before this one after its last checkpoint; from a pod's log, read again now."""
        with self._lock:
            seen = self._republished.get(log_key(line))
            if not seen or seen[(line.event_time, line.line)] <= 0:
                return False
            seen[(line.event_time, line.line)] -= 1
            return True

    def checkpoint(self, timeout: float = 10.0) -> bool:
        """Save how far each container's log was handed to the producer, once delivered."""
        path = self.settings.logs.state_file
        if path is None:
            return False
        # Before the positions: what lies past these offsets is read back after a restart and
        # skipped once when read again (a line the positions already pass is not read again).
        ends = topic_ends(self.settings, self.topic)
        with self._lock:
            if self._undelivered:
                # Lines were lost: keep the last state, so a restart reads them again.
                log.warning("log-stream state not saved: some lines were not delivered")
                return False
            if all(watcher.relists for watcher in self.pod_watchers):
                # Every pod alive was seen since the start: positions nobody claimed belong to
                # pods deleted while log-stream was down.
                self._saved.clear()
            positions = [
                [uid, container, ts_ns, count, instance]
                for (uid, container), (ts_ns, count, instance) in self._saved.items()
            ]
            for f in self.followers.values():
                if f.submitted.ts_ns is not None and f.submitted_instance is not None:
                    positions.append(
                        [
                            f.uid,
                            f.container,
                            f.submitted.ts_ns,
                            f.submitted.count_at_ts,
                            f.submitted_instance,
                        ]
                    )
            done = [list(key) for key in self._done]
        if self.publisher.flush(timeout):
            return False
        offsets = {str(p): o for p, o in ends.items()}
        save_state(path, STATE_VERSION, {"positions": positions, "done": done, "offsets": offsets})
        return True

    def _checkpoint_loop(self) -> None:
        while not self.stopping.wait(self.settings.logs.checkpoint_s):
            try:
                self.checkpoint()
            except Exception:
                log.exception("saving the log-stream state failed")

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self.settings.logs.state_file is not None and not self._restored:
            # A first state, before anything is published: a streamer killed before its first
            # periodic checkpoint leaves its successor the offsets to read back from.
            self.checkpoint()
        publisher = threading.Thread(target=self._publish_loop, name="logs-publish", daemon=True)
        publisher.start()
        self._threads.append(publisher)
        if self.settings.logs.state_file is not None:
            saver = threading.Thread(target=self._checkpoint_loop, name="logs-state", daemon=True)
            saver.start()
            self._threads.append(saver)
        for watcher in self.pod_watchers:
            thread = threading.Thread(target=watcher.run, name=f"logs-{watcher.collection}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        for watcher in self.pod_watchers:
            watcher.stop()
        with self._lock:
            followers = list(self.followers.values())
            threads = list(self._threads)
        for follower in followers:
            follower.interrupt()
        for thread in threads:
            thread.join(timeout)
        if self.settings.logs.state_file is not None:
            self.checkpoint(timeout)

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()


class _Slot:
    """One of `logs.max_streams` stream slots; waiting for one gives up when stopping."""

    def __init__(self, slots: threading.BoundedSemaphore, stopping: threading.Event) -> None:
        self._slots = slots
        self._stopping = stopping

    def __enter__(self) -> None:
        while not self._slots.acquire(timeout=0.2):
            if self._stopping.is_set():
                raise _Stopping

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


class _Stopping(Exception):
    pass


def run_log_stream(
    settings: Settings,
    stop: threading.Event,
    publisher: Publisher | None = None,
    observers: Sequence[LogObserver] = (),
    status: ElectionStatus | None = None,
) -> None:
    """The `sentinel log-stream` process: follow until `stop` is set, then flush the producer.

    With `leader_election.enabled`, only while this replica holds the lease (`run_elected`).
    `sentinel capture` passes a publisher that publishes nothing and an observer that records.
    """
    from producers.k8s.client import producer_session

    with producer_session(settings, "log-stream", publisher) as (session_publisher, api):

        def lead(leading: threading.Event) -> None:
            LogStreamer(settings, session_publisher, api, observers).run(leading)

        run_elected(settings, api, "log-stream", stop, lead, status)
