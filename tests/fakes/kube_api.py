"""A fake Kubernetes API server that speaks the real wire protocol, for driving the real client.

It serves, over plain HTTP on 127.0.0.1, what the producers use of kube-apiserver:

- list (``GET /api/v1/[namespaces/NS/]pods|services|events``, ``/apis/batch/v1/.../jobs``):
  a ``*List`` whose items carry no kind/apiVersion (as the real server sends them), the
  collection ``metadata.resourceVersion``, ``labelSelector`` / ``fieldSelector``, ``limit`` /
  ``continue`` pages from a consistent snapshot;
- watch (``?watch=true&resourceVersion=N``): chunked JSON lines ``{"type", "object"}`` with every
  change after N, ``BOOKMARK`` events when ``allowWatchBookmarks=true``, ``timeoutSeconds``
  ending the stream cleanly, and after a `compact` a resourceVersion that is too old answered
  with an ``ERROR`` event carrying a 410 ``Status`` (the watch cache's way) or, with
  ``gone_as_http=True``, an HTTP 410 (etcd's way); with `gone_every_watch` every watch from a
  resourceVersion is answered so (an API server whose watch cache keeps failing);
- leases (``/apis/coordination.k8s.io/v1/namespaces/NS/leases[/NAME]``): GET (404 ``Status``
  when absent), POST (201; 409 AlreadyExists), PUT (409 Conflict when the body's
  ``metadata.resourceVersion`` is not the stored one, as optimistic concurrency works on the real
  server; unconditional without one), every write bumping the resourceVersion;
- ``GET /version`` (what ``kubectl version`` reads) and SelfSubjectAccessReview
  (``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews``: 201 with the spec echoed
  and ``status.allowed``, an RBAC-style reason when allowed and none when not, as RBAC never
  denies explicitly); everything is allowed until `deny` takes a verb on a resource away;
- pod logs (``.../pods/NAME/log``): ``container``, ``follow``, ``timestamps`` (RFC3339Nano with
  nine digits, as kubelet writes them), ``sinceTime``, ``sinceSeconds``, ``previous`` (the last
  terminated instance; 400 when there is none, as kubelet answers).

The test-facing API changes objects (`add`, `modify`, `delete`), appends log lines, restarts
containers, compacts history, drops or silences open streams, and with `stream_lifetime_s` cuts
every watch and log stream that long after it opened (a proxy with a maximum connection age).
Changes and stream decisions are made under one lock, so `atomic()` makes several changes (and
a drop) indivisible for watchers.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

RESOURCES: dict[str, tuple[str, str]] = {
    # resource -> (kind, apiVersion)
    "pods": ("Pod", "v1"),
    "services": ("Service", "v1"),
    "events": ("Event", "v1"),
    "jobs": ("Job", "batch/v1"),
}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def parse_time_ns(text: str) -> int:
    match = re.fullmatch(r"(.+?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", text.strip())
    if match is None:
        raise ValueError(f"not RFC 3339: {text!r}")
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    base = datetime.fromisoformat(match.group(1) + zone)
    return int(base.timestamp()) * 1_000_000_000 + int((match.group(2) or "").ljust(9, "0"))


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _split_requirements(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def label_matches(selector: str | None, labels: dict[str, str]) -> bool:
    for req in _split_requirements(selector or ""):
        set_based = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", req)
        if set_based:
            key, op, values = set_based.groups()
            wanted = {v.strip() for v in values.split(",")}
            if (labels.get(key) in wanted) != (op == "in"):
                return False
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in req:
            key, value = (s.strip() for s in req.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif req.startswith("!"):
            if req[1:].strip() in labels:
                return False
        elif req not in labels:
            return False
    return True


def field_matches(selector: str | None, obj: dict[str, Any]) -> bool:
    for req in _split_requirements(selector or ""):
        negate = "!=" in req
        path, value = (s.strip() for s in re.split(r"!=|==|=", req, maxsplit=1))
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        actual = "" if current is None else str(current)
        if (actual == value) == negate:
            return False
    return True


@dataclass
class LogInstance:
    """The log of one run of a container (a restart starts a new instance)."""

    lines: list[tuple[int, bytes]] = field(default_factory=list)
    terminated: bool = False


@dataclass
class _Change:
    rv: int
    resource: str
    type: str
    obj: dict[str, Any]


class FakeKubeApi:
    def __init__(self, bookmark_interval: float = 0.2, gone_as_http: bool = False) -> None:
        self.bookmark_interval = bookmark_interval
        self.gone_as_http = gone_as_http
        self._lock = threading.RLock()
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in RESOURCES}
        self._history: list[_Change] = []
        self._history_rvs: list[int] = []
        self._compacted_rv = 0
        self.gone_every_watch = False
        self.stream_lifetime_s: float | None = None
        self._drop_generation = 0
        self._expire_generation = 0
        self._silenced: set[int] = set()
        self._open_watches: set[int] = set()
        self._watch_ids = itertools.count(1)
        self._log_generation = 0
        self._open_logs = 0
        self._logs: dict[tuple[str, str, str], list[LogInstance]] = {}
        self._snapshots: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.lease_requests: list[tuple[str, str]] = []  # (method, path)
        self._denied: set[tuple[str, str, str, str]] = set()  # (verb, group, resource, sub)
        self.access_reviews: list[dict[str, Any]] = []  # resourceAttributes asked about
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ---- server lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeKubeApi:
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise TimeoutError("fake kube API did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        if self._loop is not None and self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            with contextlib.suppress(Exception):
                future.result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        leases = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        app.router.add_get(leases + "/{name}", self._handle_lease)
        app.router.add_put(leases + "/{name}", self._handle_lease)
        app.router.add_post(leases, self._handle_lease)
        app.router.add_get("/version", self._handle_version)
        app.router.add_get("/version/", self._handle_version)
        app.router.add_post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", self._handle_access_review
        )
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self._handle_log)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._handle_get_pod)
        app.router.add_get("/api/v1/namespaces/{ns}/{resource}", self._handle_collection)
        app.router.add_get("/api/v1/{resource}", self._handle_collection)
        app.router.add_get("/apis/batch/v1/namespaces/{ns}/{resource}", self._handle_collection)
        app.router.add_get("/apis/batch/v1/{resource}", self._handle_collection)
        runner = web.AppRunner(app, shutdown_timeout=1.0, handle_signals=False)
        self._runner = runner
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        started.set()
        loop.run_forever()
        loop.close()

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig pointing at this server (what the producers load, as in production)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "tester", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    # ---- authorization -----------------------------------------------------------------------

    def deny(self, resource: str, verb: str = "*", group: str = "") -> None:
        """From now on RBAC grants no `verb` ("*": any) on `resource` ("pods/log": a
        subresource) of API `group`."""
        name, _, sub = resource.partition("/")
        with self._lock:
            self._denied.add((verb, group, name, sub))

    def _allowed(self, verb: str, group: str, resource: str, sub: str) -> bool:
        with self._lock:
            return not any(
                rule[0] in ("*", verb) and rule[1:] == (group, resource, sub)
                for rule in self._denied
            )

    async def _handle_version(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.4",
                "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
                "gitTreeState": "clean",
                "buildDate": "2024-12-10T11:37:27Z",
                "goVersion": "go1.22.9",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    async def _handle_access_review(self, request: web.Request) -> web.Response:
        body = await request.json()
        # The server takes the kind from the URL when the body leaves it out.
        if body.get("kind", "SelfSubjectAccessReview") != "SelfSubjectAccessReview" or (
            "spec" not in body
        ):
            status = status_body(400, "BadRequest", "expected a SelfSubjectAccessReview")
            return web.json_response(status, status=400)
        attrs = body["spec"].get("resourceAttributes") or {}
        self.access_reviews.append(dict(attrs))
        allowed = self._allowed(
            attrs.get("verb", ""),
            attrs.get("group", ""),
            attrs.get("resource", ""),
            attrs.get("subresource", ""),
        )
        review_status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            review_status["reason"] = (
                'RBAC: allowed by ClusterRoleBinding "sentinel" of ClusterRole "sentinel" '
                'to User "tester"'
            )
        answer = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": body["spec"],
            "status": review_status,
        }
        return web.json_response(answer, status=201)

    # ---- objects ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Everything inside happens at once as far as open streams can tell."""
        with self._lock:
            yield

    @property
    def resource_version(self) -> int:
        return self._rv

    def _record(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._history.append(_Change(self._rv, resource, kind, copy.deepcopy(obj)))
        self._history_rvs.append(self._rv)

    def add(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            kind, api_version = RESOURCES[resource]
            obj = copy.deepcopy(obj)
            obj["kind"], obj["apiVersion"] = kind, api_version
            meta = obj.setdefault("metadata", {})
            meta.setdefault("namespace", "default")
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", rfc3339(datetime.now(UTC)))
            key = (meta["namespace"], meta["name"])
            if key in self._objects[resource]:
                raise ValueError(f"{resource} {key} exists")
            self._record(resource, "ADDED", obj)
            self._objects[resource][key] = obj
            if resource == "pods":
                for container in obj.get("spec", {}).get("containers", []):
                    self._logs[(key[0], key[1], container["name"])] = [LogInstance()]
            return copy.deepcopy(obj)

    def modify(
        self, resource: str, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        with self._lock:
            obj = self._objects[resource][(namespace, name)]
            change(obj)
            self._record(resource, "MODIFIED", obj)
            return copy.deepcopy(obj)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self._lock:
            obj = self._objects[resource].pop((namespace, name))
            self._record(resource, "DELETED", obj)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._objects[resource][(namespace, name)])

    def compact(self) -> None:
        """Forget history up to now: a watch from an older resourceVersion gets 410 Gone."""
        with self._lock:
            self._compacted_rv = self._rv

    # ---- streams ----------------------------------------------------------------------------

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream (no final chunk)."""
        with self._lock:
            self._drop_generation += 1

    def expire_watches(self) -> None:
        """Send every open watch an ERROR event with a 410 Status, then end it."""
        with self._lock:
            self._expire_generation += 1

    def silence_watches(self) -> None:
        """Open watches stay connected but never send another byte; new watches are normal."""
        with self._lock:
            self._silenced |= self._open_watches

    def _outlived(self, opened: float) -> bool:
        lifetime = self.stream_lifetime_s
        return lifetime is not None and time.monotonic() - opened >= lifetime

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._open_watches)

    def drop_log_streams(self) -> None:
        with self._lock:
            self._log_generation += 1

    @property
    def open_log_streams(self) -> int:
        with self._lock:
            return self._open_logs

    def count_requests(self, path_part: str, **query: str) -> int:
        with self._lock:
            return sum(
                1
                for path, q in self.requests
                if path_part in path and all(q.get(k) == v for k, v in query.items())
            )

    # ---- logs -------------------------------------------------------------------------------

    def append_log(
        self, namespace: str, pod: str, container: str, data: bytes, ts_ns: int | None = None
    ) -> int:
        """Append one line (no newline in `data`) to the running instance; returns its time."""
        with self._lock:
            instance = self._logs[(namespace, pod, container)][-1]
            if ts_ns is None:
                ts_ns = time.time_ns()
                if instance.lines and ts_ns <= instance.lines[-1][0]:
                    ts_ns = instance.lines[-1][0] + 1
            instance.lines.append((ts_ns, data))
            return ts_ns

    def restart_container(self, namespace: str, pod: str, container: str) -> None:
        """The container exits and starts again: a new log instance, restartCount + 1."""
        with self._lock:
            instances = self._logs[(namespace, pod, container)]
            instances[-1].terminated = True
            instances.append(LogInstance())
            now = rfc3339(datetime.now(UTC))

            def bump(obj: dict[str, Any]) -> None:
                for status in obj.setdefault("status", {}).setdefault("containerStatuses", []):
                    if status["name"] == container:
                        status["restartCount"] = status.get("restartCount", 0) + 1
                        status["lastState"] = {
                            "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": now}
                        }
                        status["state"] = {"running": {"startedAt": now}}

            self.modify("pods", namespace, pod, bump)

    def replace(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A MODIFIED of a recorded object (a capture's, with its own times): the stored object
        becomes `obj`; for a pod, each container's log follows its status as kubelet's does: a
        new instance per restart, the stream ended once the container is terminated."""
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", "default"), meta["name"]

        def become(stored: dict[str, Any]) -> None:
            kind, api_version = stored["kind"], stored["apiVersion"]
            stored.clear()
            stored.update(copy.deepcopy(obj), kind=kind, apiVersion=api_version)

        with self._lock:
            changed = self.modify(resource, namespace, name, become)
            if resource == "pods":
                for status in changed.get("status", {}).get("containerStatuses", []):
                    instances = self._logs.setdefault(
                        (namespace, name, status["name"]), [LogInstance()]
                    )
                    while len(instances) <= status.get("restartCount", 0):
                        instances[-1].terminated = True
                        instances.append(LogInstance())
                    instances[-1].terminated = "terminated" in (status.get("state") or {})
            return changed

    def finish_pod(self, namespace: str, pod: str, phase: str = "Succeeded") -> None:
        """Every container exits for good (follow streams end) and the pod reaches `phase`."""
        with self._lock:
            for (ns, name, _container), instances in self._logs.items():
                if (ns, name) == (namespace, pod):
                    instances[-1].terminated = True
            now = rfc3339(datetime.now(UTC))

            def finish(obj: dict[str, Any]) -> None:
                obj["status"]["phase"] = phase
                for status in obj["status"].get("containerStatuses", []):
                    code = 0 if phase == "Succeeded" else 1
                    status["state"] = {"terminated": {"exitCode": code, "finishedAt": now}}
                    status["ready"] = False

            self.modify("pods", namespace, pod, finish)

    # ---- leases -----------------------------------------------------------------------------

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._leases.get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    async def _handle_lease(self, request: web.Request) -> web.Response:
        namespace = request.match_info["ns"]
        with self._lock:
            self.lease_requests.append((request.method, request.path))
        if request.method == "GET":
            found = self.lease(namespace, request.match_info["name"])
            if found is None:
                message = f'leases.coordination.k8s.io "{request.match_info["name"]}" not found'
                return web.json_response(status_body(404, "NotFound", message), status=404)
            return web.json_response(found)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(status_body(400, "BadRequest", "invalid JSON"), status=400)
        if request.method == "POST":
            return self._create_lease(namespace, body)
        return self._replace_lease(namespace, request.match_info["name"], body)

    def _create_lease(self, namespace: str, body: dict[str, Any]) -> web.Response:
        meta = body.setdefault("metadata", {})
        name = meta.get("name", "")
        with self._lock:
            if (namespace, name) in self._leases:
                message = f'leases.coordination.k8s.io "{name}" already exists'
                return web.json_response(status_body(409, "AlreadyExists", message), status=409)
            self._rv += 1
            meta.update(
                namespace=namespace,
                uid=str(uuid.uuid4()),
                resourceVersion=str(self._rv),
                creationTimestamp=rfc3339(datetime.now(UTC)),
            )
            body["kind"], body["apiVersion"] = "Lease", "coordination.k8s.io/v1"
            self._leases[(namespace, name)] = copy.deepcopy(body)
        return web.json_response(body, status=201)

    def _replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> web.Response:
        meta = body.setdefault("metadata", {})
        with self._lock:
            stored = self._leases.get((namespace, name))
            if stored is None:
                message = f'leases.coordination.k8s.io "{name}" not found'
                return web.json_response(status_body(404, "NotFound", message), status=404)
            sent = meta.get("resourceVersion")
            if sent and sent != stored["metadata"]["resourceVersion"]:
                message = (
                    f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again"
                )
                return web.json_response(status_body(409, "Conflict", message), status=409)
            self._rv += 1
            meta.update(
                name=name,
                namespace=namespace,
                uid=stored["metadata"]["uid"],
                creationTimestamp=stored["metadata"]["creationTimestamp"],
                resourceVersion=str(self._rv),
            )
            body["kind"], body["apiVersion"] = "Lease", "coordination.k8s.io/v1"
            self._leases[(namespace, name)] = copy.deepcopy(body)
        return web.json_response(body)

    # ---- HTTP handlers ----------------------------------------------------------------------

    async def _handle_get_pod(self, request: web.Request) -> web.Response:
        self._log_request(request)
        key = (request.match_info["ns"], request.match_info["name"])
        with self._lock:
            obj = copy.deepcopy(self._objects["pods"].get(key))
        if obj is None:
            body = status_body(404, "NotFound", f'pods "{key[1]}" not found')
            return web.json_response(body, status=404)
        return web.json_response(obj)

    def _log_request(self, request: web.Request) -> None:
        with self._lock:
            self.requests.append((request.path, dict(request.query)))

    async def _handle_collection(self, request: web.Request) -> web.StreamResponse:
        self._log_request(request)
        resource = request.match_info["resource"]
        if resource not in RESOURCES:
            return web.json_response(status_body(404, "NotFound", "no such resource"), status=404)
        namespace = request.match_info.get("ns")
        query = request.query
        if query.get("watch") in ("true", "1"):
            return await self._watch(request, resource, namespace)
        return self._list(resource, namespace, query)

    def _selected(self, obj: dict[str, Any], namespace: str | None, query: Any) -> bool:
        meta = obj["metadata"]
        if namespace is not None and meta.get("namespace") != namespace:
            return False
        return label_matches(query.get("labelSelector"), meta.get("labels") or {}) and (
            field_matches(query.get("fieldSelector"), obj)
        )

    def _list(self, resource: str, namespace: str | None, query: Any) -> web.Response:
        kind, api_version = RESOURCES[resource]
        token = query.get("continue")
        with self._lock:
            if token:
                snapshot = self._snapshots.get(token)
                if snapshot is None:
                    body = status_body(410, "Expired", "continue token expired")
                    return web.json_response(body, status=410)
                rv = int(token.split(":", 1)[0])
                items = snapshot
            else:
                rv = self._rv
                items = []
                for key in sorted(self._objects[resource]):
                    obj = self._objects[resource][key]
                    if self._selected(obj, namespace, query):
                        item = copy.deepcopy(obj)
                        # A list's items carry no kind/apiVersion: the list says what they are.
                        item.pop("kind", None)
                        item.pop("apiVersion", None)
                        items.append(item)
            metadata: dict[str, Any] = {"resourceVersion": str(rv)}
            limit = int(query.get("limit") or 0)
            if limit and len(items) > limit:
                next_token = f"{rv}:{uuid.uuid4().hex}"
                self._snapshots[next_token] = items[limit:]
                metadata["continue"] = next_token
                metadata["remainingItemCount"] = len(items) - limit
                items = items[:limit]
        body = {"kind": f"{kind}List", "apiVersion": api_version, "metadata": metadata}
        body["items"] = items
        return web.json_response(body)

    async def _watch(
        self, request: web.Request, resource: str, namespace: str | None
    ) -> web.StreamResponse:
        query = request.query
        kind, api_version = RESOURCES[resource]
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(query.get("timeoutSeconds") or 0)
        since_param = query.get("resourceVersion") or "0"
        initial: list[dict[str, Any]] = []
        with self._lock:
            watch_id = next(self._watch_ids)
            drop_gen, expire_gen = self._drop_generation, self._expire_generation
            if since_param == "0":
                since = self._rv
                initial = [
                    {"type": "ADDED", "object": copy.deepcopy(o)}
                    for o in self._objects[resource].values()
                    if self._selected(o, namespace, query)
                ]
            else:
                since = int(since_param)
            # "0" is "any version": it cannot be too old.
            too_old = since < self._compacted_rv or (self.gone_every_watch and since_param != "0")
            oldest = self._rv if self.gone_every_watch else self._compacted_rv
        gone = status_body(410, "Expired", f"too old resource version: {since} ({oldest})")
        if too_old and self.gone_as_http:
            return web.json_response(gone, status=410)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if too_old:
            await response.write(_line({"type": "ERROR", "object": gone}))
            await response.write_eof()
            return response
        with self._lock:
            position = bisect.bisect_right(self._history_rvs, since)
        deadline = time.monotonic() + timeout if timeout else None
        opened = last_write = time.monotonic()
        with self._lock:
            self._open_watches.add(watch_id)
        try:
            for event in initial:
                await response.write(_line(event))
            while not self._closing:
                with self._lock:
                    if self._drop_generation != drop_gen or self._outlived(opened):
                        _abort(request)
                        return response
                    expired = self._expire_generation != expire_gen
                    silent = watch_id in self._silenced
                    changes = [
                        c
                        for c in self._history[position:]
                        if c.resource == resource and self._selected(c.obj, namespace, query)
                    ]
                    position = len(self._history)
                    current_rv = self._rv
                if silent:
                    await asyncio.sleep(0.01)
                    continue
                if expired:
                    await response.write(_line({"type": "ERROR", "object": gone}))
                    break
                for change in changes:
                    await response.write(_line({"type": change.type, "object": change.obj}))
                    last_write = time.monotonic()
                now = time.monotonic()
                if bookmarks and now - last_write >= self.bookmark_interval:
                    bookmark = {
                        "kind": kind,
                        "apiVersion": api_version,
                        "metadata": {"resourceVersion": str(current_rv)},
                    }
                    await response.write(_line({"type": "BOOKMARK", "object": bookmark}))
                    last_write = now
                if deadline is not None and now >= deadline:
                    break
                await asyncio.sleep(0.01)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away
        finally:
            with self._lock:
                self._open_watches.discard(watch_id)
                self._silenced.discard(watch_id)
        return response

    async def _handle_log(self, request: web.Request) -> web.StreamResponse:
        self._log_request(request)
        namespace, pod = request.match_info["ns"], request.match_info["name"]
        query = request.query
        follow = query.get("follow") in ("true", "1")
        timestamps = query.get("timestamps") in ("true", "1")
        since_ns = parse_time_ns(query["sinceTime"]) if query.get("sinceTime") else None
        if query.get("sinceSeconds"):
            since_ns = time.time_ns() - int(query["sinceSeconds"]) * 1_000_000_000
        with self._lock:
            pod_obj = self._objects["pods"].get((namespace, pod))
            if pod_obj is None:
                body = status_body(404, "NotFound", f'pods "{pod}" not found')
                return web.json_response(body, status=404)
            containers = [c["name"] for c in pod_obj.get("spec", {}).get("containers", [])]
            container = query.get("container") or (containers[0] if len(containers) == 1 else "")
            instances = self._logs.get((namespace, pod, container))
            if instances is None:
                message = f"container {container!r} is not valid for pod {pod}"
                return web.json_response(status_body(400, "BadRequest", message), status=400)
            if query.get("previous") in ("true", "1"):
                if len(instances) < 2:
                    message = (
                        f'previous terminated container "{container}" in pod "{pod}" not found'
                    )
                    return web.json_response(status_body(400, "BadRequest", message), status=400)
                instance = instances[-2]
            else:
                instance = instances[-1]
            generation = self._log_generation
            self._open_logs += 1
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            position = 0
            opened = time.monotonic()
            while not self._closing:
                with self._lock:
                    if self._log_generation != generation or self._outlived(opened):
                        _abort(request)
                        return response
                    lines = instance.lines[position:]
                    position += len(lines)
                    finished = instance.terminated or not follow
                for ts_ns, data in lines:
                    if since_ns is not None and ts_ns < since_ns:
                        continue
                    prefix = (rfc3339_nano(ts_ns) + " ").encode() if timestamps else b""
                    await response.write(prefix + data + b"\n")
                if finished:
                    break
                await asyncio.sleep(0.01)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            with self._lock:
                self._open_logs -= 1
        return response


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def make_pod(
    namespace: str,
    name: str,
    labels: dict[str, str] | None = None,
    containers: tuple[str, ...] = ("main",),
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A running pod as the API shows it (spec containers, status with containerStatuses)."""
    now = rfc3339(datetime.now(UTC))
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
    if annotations:
        meta["annotations"] = annotations
    meta["managedFields"] = [{"manager": "kubelet", "operation": "Update", "fieldsV1": {}}]
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": c, "image": "busybox"} for c in containers]},
        "status": {
            "phase": "Running",
            "startTime": now,
            "containerStatuses": [
                {
                    "name": c,
                    "image": "busybox",
                    "imageID": "docker.io/library/busybox@sha256:" + "0" * 64,
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                    "restartCount": 0,
                    "ready": True,
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
                for c in containers
            ],
        },
    }
