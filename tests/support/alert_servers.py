"""Real HTTP servers on loopback standing in for Slack and for a webhook receiver.

`FakeSlack` serves an incoming webhook (``POST /hooks/<id>``) and the Web API methods the bot
channel uses (``POST /api/chat.postMessage``, ``POST /api/chat.update``) over real HTTP, and
checks every request as Slack would: JSON, the bearer token, Block Kit limits (50 blocks,
3,000 characters per text, 150 per header), a known thread ``ts`` and channel. A request that
breaks a rule is answered 400 and kept in `violations`, which a test asserts empty. Responses
can be scripted (429 with Retry-After, 500) for the next requests.

`Outage` wraps any of them: while it is on, every request is answered with one status (429 with
``Retry-After`` = the seconds left, or 503) before the app sees it, as a rate-limited or broken
service would.

`WebhookReceiver` verifies ``X-Sentinel-Signature-256`` over timestamp + "." + body and refuses
stale timestamps, as a receiver following docs/alerts.md would.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sentinel.brokers import free_port

TOKEN = "xoxb-test-token"
CHANNEL_ID = "C0ALERTS"


class LoopbackServer:
    """uvicorn serving an app on 127.0.0.1:`port` in a thread; stop and start again at will."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise TimeoutError(f"loopback server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)
        self.server = self.thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Outage:
    """An ASGI wrapper: between `begin` and its end every HTTP request gets `status` instead of
    the app's answer (with ``Retry-After`` = the whole seconds left when `retry_after`)."""

    def __init__(self, app: Any, status: int, retry_after: bool = False) -> None:
        self.app = app
        self.status = status
        self.retry_after = retry_after
        self.until = 0.0  # time.monotonic() at which the service answers again
        self.refused: list[tuple[float, str]] = []  # (time.monotonic(), Retry-After sent)

    def begin(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        left = self.until - time.monotonic()
        if scope["type"] != "http" or left <= 0:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"text/plain")]
        after = str(math.ceil(left)) if self.retry_after else ""
        if after:
            headers.append((b"retry-after", after.encode()))
        self.refused.append((time.monotonic(), after))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"rate_limited" if after else b"down"})


@dataclass
class SlackMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def block_text(self) -> str:
        return json.dumps(self.blocks)


class FakeSlack:
    """See the module docstring. `messages` are what Slack would show, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[SlackMessage] = []
        self.webhook_posts: list[dict[str, Any]] = []
        self.webhook_arrivals: list[float] = []  # time.monotonic() of each accepted post
        self.requests: list[tuple[float, str]] = []
        self.violations: list[str] = []
        self.scripted: deque[tuple[int, dict[str, str], str]] = deque()
        self._ts = itertools.count(1)
        self.app = self._build()

    def script(self, status: int, headers: dict[str, str] | None = None, body: str = "") -> None:
        """Answer the next request with this, instead of handling it."""
        self.scripted.append((status, headers or {}, body))

    def top_level(self) -> list[SlackMessage]:
        return [m for m in self.messages if m.thread_ts is None]

    def replies(self, ts: str) -> list[SlackMessage]:
        return [m for m in self.messages if m.thread_ts == ts]

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{hook_id}")
        async def webhook(hook_id: str, request: Request) -> Response:
            arrived = time.monotonic()
            scripted = self._scripted(f"webhook {hook_id}")
            if scripted is not None:
                return scripted
            body = await self._json(request, "webhook")
            if body is None:
                return PlainTextResponse("invalid_payload", status_code=400)
            problems = _check_message(body)
            if problems:
                return self._refuse(problems, plain=True)
            with self.lock:
                self.webhook_posts.append(body)
                self.webhook_arrivals.append(arrived)
            return PlainTextResponse("ok")

        @app.post("/api/{method}")
        async def web_api(method: str, request: Request) -> Response:
            scripted = self._scripted(method)
            if scripted is not None:
                return scripted
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return self._refuse([f"{method}: bad or missing bearer token"], error="not_authed")
            body = await self._json(request, method)
            if body is None:
                return self._refuse([f"{method}: not JSON"], error="invalid_json")
            if method == "chat.postMessage":
                return self._post(body)
            if method == "chat.update":
                return self._update(body)
            return self._refuse([f"unexpected method {method}"], error="unknown_method")

        return app

    def _scripted(self, what: str) -> Response | None:
        with self.lock:
            self.requests.append((time.monotonic(), what))
            if not self.scripted:
                return None
            status, headers, body = self.scripted.popleft()
        return PlainTextResponse(body or "scripted", status_code=status, headers=headers)

    async def _json(self, request: Request, what: str) -> dict[str, Any] | None:
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.violations.append(f"{what}: content type {request.headers.get('content-type')}")
            return None
        try:
            body = json.loads(await request.body())
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _refuse(
        self, problems: list[str], error: str = "invalid_blocks", plain: bool = False
    ) -> Response:
        with self.lock:
            self.violations.extend(problems)
        if plain:
            return PlainTextResponse(error, status_code=400)
        return JSONResponse({"ok": False, "error": error}, status_code=200)

    def _post(self, body: dict[str, Any]) -> Response:
        problems = _check_message(body)
        channel = body.get("channel")
        thread = body.get("thread_ts")
        with self.lock:
            if channel not in (CHANNEL_ID, "#alerts"):
                problems.append(f"chat.postMessage to unknown channel {channel!r}")
            if thread is not None and not any(m.ts == thread for m in self.messages):
                problems.append(f"chat.postMessage into unknown thread {thread!r}")
        if problems:
            return self._refuse(problems)
        ts = f"{1_700_000_000 + next(self._ts)}.000100"
        message = SlackMessage(CHANNEL_ID, ts, body.get("text", ""), body.get("blocks", []), thread)
        with self.lock:
            self.messages.append(message)
        return JSONResponse({"ok": True, "channel": CHANNEL_ID, "ts": ts})

    def _update(self, body: dict[str, Any]) -> Response:
        problems = _check_message(body)
        with self.lock:
            target = next((m for m in self.messages if m.ts == body.get("ts")), None)
        if target is None or body.get("channel") != CHANNEL_ID:
            problems.append(f"chat.update of unknown message {body.get('ts')!r}")
        if problems or target is None:
            return self._refuse(problems or ["no target"], error="message_not_found")
        with self.lock:
            target.updates.append(body)
        return JSONResponse({"ok": True, "channel": CHANNEL_ID, "ts": target.ts})


def _check_message(body: dict[str, Any]) -> list[str]:
    problems = []
    text = body.get("text")
    blocks = body.get("blocks")
    if not text and not blocks:
        problems.append("a message needs text or blocks")
    if isinstance(text, str) and len(text) > 3000:
        problems.append(f"text of {len(text)} characters")
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            problems.append(f"{len(blocks) if isinstance(blocks, list) else '?'} blocks (max 50)")
        for block in blocks if isinstance(blocks, list) else []:
            problems.extend(_check_block(block))
    return problems


def _check_block(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        text = block.get("text", {})
        if text.get("type") != "plain_text" or len(text.get("text", "")) > 150:
            return ["header must be plain_text of at most 150 characters"]
        return []
    if kind == "section":
        texts = [block["text"]] if "text" in block else []
        fields = block.get("fields", [])
        if len(fields) > 10:
            return ["a section has at most 10 fields"]
        too_long = [t for t in texts if len(t.get("text", "")) > 3000]
        too_long += [f for f in fields if len(f.get("text", "")) > 2000]
        return ["section text over the limit"] if too_long else []
    if kind == "context":
        return [] if block.get("elements") else ["context without elements"]
    return [f"unexpected block type {kind!r}"]


class WebhookReceiver:
    """Accepts only correctly signed, fresh deliveries (docs/alerts.md); keeps them in order."""

    def __init__(self, secret: str, max_age_s: float = 300.0) -> None:
        self.secret = secret
        self.max_age_s = max_age_s
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.scripted: deque[int] = deque()
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                if self.scripted:
                    return PlainTextResponse("scripted", status_code=self.scripted.popleft())
            problem = self._verify(request.headers, body)
            if problem is not None:
                with self.lock:
                    self.refused.append(problem)
                return PlainTextResponse(problem, status_code=401)
            with self.lock:
                self.accepted.append(json.loads(body))
            return PlainTextResponse("ok")

        return app

    def _verify(self, headers: Any, body: bytes) -> str | None:
        timestamp = headers.get("x-sentinel-timestamp")
        signature = headers.get("x-sentinel-signature-256")
        if not timestamp or not signature:
            return "unsigned"
        if abs(time.time() - int(timestamp)) > self.max_age_s:
            return "stale timestamp"
        expected = hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        if not hmac.compare_digest(signature, "sha256=" + expected.hexdigest()):
            return "bad signature"
        if headers.get("content-type") != "application/json":
            return "not JSON"
        return None
