"""`sentinel k8s-watch`: Pods, Jobs, Services and core/v1 Events to the `sentinel.k8s` topic.

One `Reflector` thread per watched collection (kind x namespace, or kind across all namespaces)
runs client-go's reflector loop with the official `kubernetes` client:

1. list (in pages) and publish what the `ObjectLedger` says was not published yet;
2. watch from the list's resourceVersion with bookmarks, publishing each event once per
   (uid, resourceVersion) and remembering the newest resourceVersion seen (bookmarks included);
3. when the stream ends (server timeout), is cut, or stays silent longer than
   `k8s.silence_limit_s` (the client's read timeout), watch again from that resourceVersion,
   after a capped exponential backoff with jitter when it failed;
4. on 410 Gone (an HTTP 410 or an ERROR event with code 410) relist at once and publish only
   the differences: objects changed or created while away (RELISTED) and objects deleted while
   away (DELETED, reported at the list's resourceVersion).

With `k8s.state_file`, what was published is saved (after the producer flushed) every
`k8s.checkpoint_s` and at shutdown, with the topic's end offsets at that moment (the first
checkpoint is written before anything is published); a restart restores it and then reads the
topic from those offsets (`producers.published`), so that what was published after the last
checkpoint by a watcher that died (SIGKILL) is not published again: it publishes only what
changed while it was down.

Publishing goes through `KafkaPublisher.submit`, which queues and returns: the watch loop never
waits for the broker. Decisions (dedup, relist diff, backoff) live in `producers.k8s.watch_state`;
normalisation in `producers.k8s.objects`.

RBAC (ClusterRole, or Role per watched namespace) the service account needs, and nothing more::

    - apiGroups: [""]
      resources: [pods, services, events]
      verbs: [get, list, watch]
    - apiGroups: [batch]
      resources: [jobs]
      verbs: [get, list, watch]
    - apiGroups: [""]
      resources: [pods/log]          # only for `sentinel log-stream`
      verbs: [get]
    - apiGroups: [coordination.k8s.io]
      resources: [leases]            # only with leader_election.enabled
      verbs: [get, create, update]
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import random
import threading
import time
from collections import Counter as CounterDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import Counter

from producers.k8s.leader import ElectionStatus, run_elected
from producers.k8s.objects import K8sNormalizer, object_key
from producers.k8s.state_file import load_state, save_state
from producers.k8s.watch_state import Emit, ObjectLedger, backoff_delay, summarize
from producers.published import published_since, topic_ends
from runtime.config import K8sConfig, K8sKind, Settings
from runtime.metrics import DEAD_LETTERS
from runtime.troubleshooting import KUBERNETES_CONNECTION, RBAC_DENIED, see
from schemas.messages import DeadLetter, K8sObjectEvent

log = logging.getLogger("sentinel.k8s_watch")

WATCH_EVENTS = Counter(
    "sentinel_k8s_events_total", "Kubernetes events published", ["kind", "event_type"]
)
WATCH_DUPLICATES = Counter(
    "sentinel_k8s_duplicates_total", "Watch events dropped as already published", ["kind"]
)
RELISTS = Counter("sentinel_k8s_relists_total", "Lists (initial and after 410 Gone)", ["kind"])
WATCH_RESTARTS = Counter(
    "sentinel_k8s_watch_restarts_total", "Watch streams reopened, by reason", ["kind", "reason"]
)

STATE_VERSION = 1

# kind -> (API class, namespaced list method, all-namespaces list method, apiVersion)
_KINDS: dict[K8sKind, tuple[str, str, str, str]] = {
    K8sKind.POD: ("CoreV1Api", "list_namespaced_pod", "list_pod_for_all_namespaces", "v1"),
    K8sKind.SERVICE: (
        "CoreV1Api",
        "list_namespaced_service",
        "list_service_for_all_namespaces",
        "v1",
    ),
    K8sKind.EVENT: ("CoreV1Api", "list_namespaced_event", "list_event_for_all_namespaces", "v1"),
    K8sKind.JOB: ("BatchV1Api", "list_namespaced_job", "list_job_for_all_namespaces", "batch/v1"),
}


class Publisher(Protocol):
    def submit(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None
    ) -> concurrent.futures.Future[tuple[int, int]]: ...

    def send(
        self, topic: str, key: bytes | None, value: bytes, on_failure: Callable[[Any], None]
    ) -> None: ...

    def flush(self, timeout: float = 10.0) -> int: ...

    def close(self, timeout: float = 10.0) -> None: ...


@dataclass(frozen=True)
class Collection:
    """One list/watch endpoint: a kind in one namespace (or in all of them)."""

    kind: str
    api_version: str
    namespace: str | None
    list_fn: Callable[..., Any]

    def __str__(self) -> str:
        return f"{self.kind} in {self.namespace or 'all namespaces'}"


def collections(
    api: Any, config: K8sConfig, kinds: Sequence[K8sKind] | None = None
) -> list[Collection]:
    from kubernetes import client

    found: list[Collection] = []
    for kind in kinds if kinds is not None else config.kinds:
        api_class, namespaced, everywhere, api_version = _KINDS[kind]
        group = getattr(client, api_class)(api)
        if not config.namespaces:
            found.append(Collection(kind.value, api_version, None, getattr(group, everywhere)))
        for namespace in config.namespaces:
            fn = functools.partial(getattr(group, namespaced), namespace)
            found.append(Collection(kind.value, api_version, namespace, fn))
    return found


class Reflector:
    """List-then-watch one collection until stopped, calling `on_event` for each new event."""

    def __init__(
        self,
        collection: Collection,
        config: K8sConfig,
        on_event: Callable[[Emit], None],
        label_selector: str | None = None,
        field_selector: str | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.collection = collection
        self.config = config
        self.on_event = on_event
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.jitter = jitter
        self.ledger = ObjectLedger(config.dedup_recent)
        self.resource_version: str | None = None
        self.relists = 0
        self.watches = 0
        self.restarts: CounterDict[str] = CounterDict()
        self._stop = threading.Event()
        self._watch: Any = None
        self._progress = False
        # Held while the ledger changes and the matching events are handed to the producer,
        # so a checkpoint never saves a ledger ahead of what was submitted.
        self.lock = threading.Lock()

    @property
    def state_id(self) -> str:
        """Names this collection in the state file (a selector change starts afresh)."""
        c = self.collection
        return json.dumps([c.kind, c.namespace, self.label_selector, self.field_selector])

    def stop(self) -> None:
        self._stop.set()
        current = self._watch
        if current is not None:
            current.stop()  # shuts the socket down: unblocks a read in progress

    def run(self) -> None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError, ReadTimeoutError

        failures = 0
        while not self._stop.is_set():
            self._progress = False
            listed = False
            try:
                if self.resource_version is None:
                    self.resource_version = self._relist()
                    listed = True
                started = time.monotonic()
                self._watch_once()
                # Ended by the server (timeoutSeconds): healthy, unless it ends at once and
                # empty every time, which would otherwise turn into a tight loop.
                healthy = self._progress or time.monotonic() - started >= 1.0
                failures = 0 if healthy else failures + 1
                if healthy:
                    continue
                reason, problem = "empty", "watch ended at once without events"
            except ApiException as exc:
                if exc.status == 410 and self.resource_version is not None:
                    self.resource_version = None
                    if self._progress or not listed:
                        log.info(
                            "%s: resourceVersion expired (410 Gone), relisting", self.collection
                        )
                        self._restarted("gone")
                        continue
                    # Gone already for the version the list just gave: the server's watch is
                    # failing, and relisting at once would list in a tight loop (hundreds of
                    # lists a second); back off between relists, as client-go's reflector does.
                    reason, problem = "gone", "watch refused with 410 Gone right after a list"
                else:
                    reason = f"http {exc.status}"
                    problem = f"API error {exc.status}: {exc.reason}"
                if exc.status in (401, 403):  # credentials or RBAC: retrying will not fix it
                    anchor = RBAC_DENIED if exc.status == 403 else KUBERNETES_CONNECTION
                    problem += f" ({see(anchor)})"
            except ReadTimeoutError:
                reason = "silent"
                problem = f"no data for {self.config.silence_limit_s}s: the stream is dead"
            except (HTTPError, OSError) as exc:
                reason = "connection"
                problem = f"connection lost: {exc} ({see(KUBERNETES_CONNECTION)})"
            except Exception as exc:  # a bug or an unexpected payload: keep watching
                reason, problem = "error", f"unexpected error: {exc!r}"
                log.error("%s: unexpected error", self.collection, exc_info=True)
            if self._stop.is_set():
                break
            if reason != "empty":
                failures = 1 if self._progress else failures + 1
            log.warning(
                "%s: %s; %s",
                self.collection,
                problem,
                f"watching again from {self.resource_version}"
                if self.resource_version is not None
                else "relisting",
            )
            self._restarted(reason)
            delay = backoff_delay(
                failures, self.config.backoff_base_s, self.config.backoff_cap_s, self.jitter()
            )
            self._stop.wait(delay)

    def _restarted(self, reason: str) -> None:
        self.restarts[reason] += 1
        WATCH_RESTARTS.labels(self.collection.kind, reason).inc()

    def _timeouts(self) -> tuple[float, float]:
        return (self.config.connect_timeout_s, self.config.silence_limit_s)

    def _relist(self) -> str:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            response = self.collection.list_fn(
                limit=self.config.list_page_size,
                _continue=token,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                _preload_content=False,
                _request_timeout=self._timeouts(),
            )
            try:
                body = json.loads(response.data)
            finally:
                response.release_conn()
            items.extend(body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue") or None
            if not token:
                break
        list_rv = str(body["metadata"]["resourceVersion"])
        for item in items:  # list items carry no kind/apiVersion
            item.setdefault("kind", self.collection.kind)
            item.setdefault("apiVersion", self.collection.api_version)
        with self.lock:
            emits = self.ledger.diff_relist(items, list_rv)
            for emit in emits:
                self.on_event(emit)
        self.relists += 1  # counts lists whose differences were all handed on
        RELISTS.labels(self.collection.kind).inc()
        log.info(
            "%s: listed %d objects at resourceVersion %s, published %d",
            self.collection,
            len(items),
            list_rv,
            len(emits),
        )
        return list_rv

    def _watch_once(self) -> None:
        """One watch call; returns once the server ends it. Raises when it breaks."""
        from kubernetes import watch

        # "object": raw dicts, no model building (a newer server's fields never break it).
        self._watch = watch.Watch(return_type="object")  # type: ignore[no-untyped-call]
        self.watches += 1
        try:
            stream = self._watch.stream(
                self.collection.list_fn,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.config.watch_timeout_s,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                _request_timeout=self._timeouts(),
            )
            for event in stream:
                if self._stop.is_set():
                    break
                self._handle(event["type"], event["raw_object"])
        finally:
            self._watch = None

    def _handle(self, event_type: str, obj: dict[str, Any]) -> None:
        self._progress = True
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if event_type in ("ADDED", "MODIFIED", "DELETED"):
            obj.setdefault("kind", self.collection.kind)
            obj.setdefault("apiVersion", self.collection.api_version)
            with self.lock:
                accepted = self.ledger.accept(event_type, obj)
                if accepted:
                    self.on_event(Emit(event_type, obj))
            if not accepted:
                WATCH_DUPLICATES.labels(self.collection.kind).inc()
        if version:  # after publishing: a crash in between re-sends rather than skips
            self.resource_version = str(version)


# Called with (event type, raw object, received at) for every event published, e.g. to record a
# capture. Event types: ADDED, MODIFIED, DELETED, and RELISTED for list-derived states.
Observer = Callable[[str, Mapping[str, Any], datetime], None]


class K8sWatcher:
    """All reflectors of the configured kinds and namespaces, publishing to `sentinel.k8s`."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        api: Any,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.topic = settings.topic_names.k8s
        self.observers = list(observers)
        self.normalizer = K8sNormalizer(settings.k8s)
        self.published: CounterDict[str] = CounterDict()
        self.delivery_failures = 0
        self._lock = threading.Lock()
        k8s = settings.k8s
        self.reflectors = [
            Reflector(c, k8s, self._publish, k8s.label_selector, k8s.field_selector)
            for c in collections(api, k8s)
        ]
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._undelivered: set[str] = set()
        self._restored = False
        self._load_state()

    # ---- state across restarts --------------------------------------------------------------

    def _load_state(self) -> None:
        path = self.settings.k8s.state_file
        data = load_state(path, STATE_VERSION)
        if data is None:
            return
        saved = data.get("collections") or {}
        for reflector in self.reflectors:
            live = saved.get(reflector.state_id) or {}
            reflector.ledger.restore(live)
            for summary in live.values():
                self.normalizer.remember(summary)
        self._restored = True
        offsets = {int(p): int(o) for p, o in (data.get("offsets") or {}).items()}
        learnt = 0
        for value in published_since(self.settings, self.topic, offsets):
            try:
                learnt += self._learn(K8sObjectEvent.from_bytes(value))
            except ValueError as exc:  # not ours to judge here; the worker dead-letters it
                log.warning("skipping an unreadable message read back from %s: %s", self.topic, exc)
        log.info(
            "restored what was published from %s, and %d events published after it from %s",
            path,
            learnt,
            self.topic,
        )

    def _learn(self, event: K8sObjectEvent) -> bool:
        """Take a published event (read back from the topic) into its collection's ledger."""
        if event.cluster != self.settings.k8s.cluster:
            return False  # another installation's watcher on the same topic
        for reflector in self.reflectors:
            collection = reflector.collection
            if collection.kind != event.kind or collection.namespace not in (None, event.namespace):
                continue
            meta = {**(event.object.get("metadata") or {}), "uid": event.uid}
            obj = {**event.object, "metadata": {**meta, "resourceVersion": event.resource_version}}
            with reflector.lock:
                learnt = reflector.ledger.accept(event.event_type.value, obj)
            if learnt:
                self.normalizer.remember(summarize(obj))
            return learnt
        return False

    def checkpoint(self, timeout: float = 10.0) -> bool:
        """Save what was published, once the producer has delivered it; False if not saved."""
        path = self.settings.k8s.state_file
        if path is None:
            return False
        # Before the snapshot: whatever lies past these offsets is read back after a restart
        # (reading a state the snapshot holds too is harmless, missing one is not).
        ends = topic_ends(self.settings, self.topic)
        snapshot: dict[str, dict[str, Any]] = {}
        for reflector in self.reflectors:
            with reflector.lock:
                snapshot[reflector.state_id] = reflector.ledger.live_objects()
        remaining = self.publisher.flush(timeout)
        if remaining:
            log.warning("state not saved: %d messages still undelivered", remaining)
            return False
        with self._lock:
            undelivered = set(self._undelivered)
        for live in snapshot.values():
            for uid in undelivered & live.keys():
                del live[uid]  # published again after a restart
        offsets = {str(p): o for p, o in ends.items()}
        save_state(path, STATE_VERSION, {"collections": snapshot, "offsets": offsets})
        return True

    def _checkpoint_loop(self) -> None:
        while not self._stopping.wait(self.settings.k8s.checkpoint_s):
            try:
                self.checkpoint()
            except Exception:
                log.exception("saving the watch state failed")

    # ---- publishing -------------------------------------------------------------------------

    def _publish(self, emit: Emit) -> None:
        received_at = datetime.now(UTC)
        try:
            with self._lock:  # one normaliser (uid -> run key memory) shared by all reflectors
                event = self.normalizer.normalize(emit.event_type, emit.obj, received_at)
                self.published[event.event_type.value] += 1
        except Exception as exc:  # an object we cannot read: kept whole on the DLQ
            self._dead_letter(emit, exc)
            return
        for observer in self.observers:
            observer(emit.event_type, emit.obj, received_at)
        WATCH_EVENTS.labels(event.kind, event.event_type.value).inc()
        future = self.publisher.submit(self.topic, object_key(event).encode(), event.to_bytes())
        future.add_done_callback(functools.partial(self._delivered, event.uid))

    def _dead_letter(self, emit: Emit, error: Exception) -> None:
        DEAD_LETTERS.labels("k8s-watch").inc()
        log.error("cannot normalise a %s event, dead-lettered: %s", emit.event_type, error)
        raw = json.dumps({"type": emit.event_type, "object": emit.obj}, default=str).encode()
        letter = DeadLetter(
            origin_topic=self.topic,
            raw_value=raw,
            error=str(error),
            error_type=type(error).__name__,
            component="k8s-watch",
        )
        self.publisher.submit(
            self.settings.topic_names.dlq, f"{self.topic}/k8s-watch".encode(), letter.to_bytes()
        )

    def _delivered(self, uid: str, future: concurrent.futures.Future[tuple[int, int]]) -> None:
        error = future.exception()
        with self._lock:
            if error is None:
                self._undelivered.discard(uid)
                return
            # Counted in sentinel_publish_failures_total by the publisher. Left out of the
            # saved state, so a restart publishes this object again.
            self.delivery_failures += 1
            self._undelivered.add(uid)
        log.error("k8s event not delivered: %s", error)

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self.settings.k8s.state_file is not None and not self._restored:
            # A first state, before anything is published: a watcher killed before its first
            # periodic checkpoint leaves its successor the offsets to read back from.
            self.checkpoint()
        for reflector in self.reflectors:
            thread = threading.Thread(
                target=reflector.run, name=f"reflector-{reflector.collection}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if self.settings.k8s.state_file is not None:
            thread = threading.Thread(target=self._checkpoint_loop, name="k8s-state", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        for reflector in self.reflectors:
            reflector.stop()
        for thread in self._threads:
            thread.join(timeout)
        if self.settings.k8s.state_file is not None:
            self.checkpoint(timeout)

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def ledger_sizes(self) -> Mapping[str, tuple[int, int]]:
        """(live objects, recent pairs) per collection: what the memory bound is made of."""
        return {
            str(r.collection): (r.ledger.live_count, r.ledger.recent_count) for r in self.reflectors
        }


def run_k8s_watch(
    settings: Settings,
    stop: threading.Event,
    publisher: Publisher | None = None,
    observers: Sequence[Observer] = (),
    status: ElectionStatus | None = None,
) -> None:
    """The `sentinel k8s-watch` process: watch until `stop` is set, then flush the producer.

    With `leader_election.enabled`, only while this replica holds the lease (`run_elected`).
    `sentinel capture` passes a publisher that publishes nothing and an observer that records.
    """
    from producers.k8s.client import producer_session

    with producer_session(settings, "k8s-watch", publisher) as (session_publisher, api):

        def lead(leading: threading.Event) -> None:
            watcher = K8sWatcher(settings, session_publisher, api, observers)
            log.info(
                "watching %s",
                ", ".join(str(r.collection) for r in watcher.reflectors) or "nothing",
            )
            watcher.run(leading)

        run_elected(settings, api, "k8s-watch", stop, lead, status)
