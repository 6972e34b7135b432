"""The `alerting:` section: routing tree, receivers (channels), templates, delivery (issue 13).

Semantics in docs/alerts.md; every key documented in config.example.yaml. Route matchers are
written as Alertmanager writes them (``team="payments"``, ``severity=~"error|critical"``,
``branch!="main"``, ``pipeline!~"nightly-.*"``) and parsed here, so a bad one is a config error
naming its key. Secrets (Slack webhook URLs and bot tokens, the SMTP password, the webhook
signing secret) are never in the YAML: each is read from the environment variable named by its
``*_env`` key or from the file named by its ``*_file`` key, as the webhook secrets of
runtime.config are. Templates are Jinja2 files; their syntax is checked here, and
``sinks.alerts.templates.check_templates`` renders each against a sample message when the
dispatcher starts (and in ``sentinel config check``), so a template that names an unknown
variable fails at start, not at the first alert.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from schemas.messages import LabelMatcher

DEFAULT_RECEIVER = "console"
# Test and time anomalies judged against a pipeline's history: a finding about the pipeline,
# not about one run, so it resolves when the pipeline is back to normal (docs/alerts.md).
PIPELINE_SCOPED_TYPES = ("failure_rate_spike", "duration_regression", "run_duration_regression")
_NAME = r"^[A-Za-z0-9_.:-]+$"
_MATCHER = re.compile(
    r'^\s*(?P<name>[^\s=!~"]+)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^"\s]*)\s*$'
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def parse_matcher(text: str) -> LabelMatcher:
    """``name="value"`` (also ``!=``, ``=~``, ``!~``; quotes optional for plain values) → matcher.

    Regular expressions are anchored at both ends, as in Alertmanager. Raises ValueError.
    """
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(
            f'not a matcher: {text!r} (expected name="value", name!="value", name=~"regex" or '
            'name!~"regex")'
        )
    raw = found["value"]
    value = json.loads(raw) if raw.startswith('"') else raw
    op = found["op"]
    matcher = LabelMatcher(
        name=found["name"], value=value, is_regex="~" in op, is_equal=op.startswith("=")
    )
    if matcher.is_regex:
        try:
            re.compile(f"^(?:{value})$")
        except re.error as exc:
            raise ValueError(f"{text!r}: not a valid regular expression: {exc}") from exc
    return matcher


def _check_env_name(value: str) -> str:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
        raise ValueError("expected the NAME of an environment variable (the secret stays there)")
    return value


def _check_template(path: Path) -> Path:
    """A readable file whose Jinja2 syntax is valid (undefined names are checked at start)."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        source = path.read_text()
    except OSError as exc:
        raise ValueError(f"expected a readable template file ({exc.strerror}: {path})") from exc
    try:
        SandboxedEnvironment().parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(
            f"template syntax error in {path}, line {exc.lineno}: {exc.message}"
        ) from exc
    return path


EnvName = Annotated[str, AfterValidator(_check_env_name)]
TemplateFile = Annotated[Path, AfterValidator(_check_template)]


class SecretSource(_Section):
    """Where one secret is: an environment variable (its name) or a file (its path)."""

    def _source(self, prefix: str) -> tuple[str | None, Path | None]:
        return getattr(self, f"{prefix}_env"), getattr(self, f"{prefix}_file")

    def secret(self, prefix: str) -> str | None:
        """The secret's value, or None when neither source gives one (empty counts as unset)."""
        env, path = self._source(prefix)
        value = (os.environ.get(env) or "") if env else ""
        if not value and path is not None:
            value = path.read_text().strip()
        return value or None

    def describe(self, prefix: str) -> str:
        env, path = self._source(prefix)
        return f"env {env}" if env else f"file {path}"


class ConsoleChannel(_Section):
    """One readable line per message on the process's standard output (or error)."""

    stream: Literal["stdout", "stderr"] = "stdout"
    format: Literal["text", "json"] = "text"


class FileChannel(_Section):
    """One line per message appended to a file (JSON Lines with format json)."""

    path: Path
    format: Literal["text", "json"] = "json"


class SlackWebhookChannel(SecretSource):
    """A Slack incoming webhook (Block Kit messages; no threads: each message is new)."""

    url_env: EnvName | None = Field(default=None, description="Env var holding the webhook URL.")
    url_file: Path | None = Field(default=None, description="File holding the webhook URL.")

    @model_validator(mode="after")
    def _one_source(self) -> SlackWebhookChannel:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("set exactly one of url_env or url_file (the URL is a secret)")
        return self


class SlackBotChannel(SecretSource):
    """Slack through a bot token: chat.postMessage, follow-ups in the first message's thread,
    the first message kept up to date with chat.update."""

    token_env: EnvName | None = Field(default=None, description="Env var holding the xoxb- token.")
    token_file: Path | None = None
    channel: str = Field(min_length=1, description="Channel id (C0123...) or #name.")
    api_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base URL (tests, proxies)."
    )
    thread_replies: bool = Field(
        default=True, description="Later messages of a group go into its first message's thread."
    )
    update_first: bool = Field(
        default=True, description="Edit the group's first message to show the current state."
    )

    @model_validator(mode="after")
    def _one_source(self) -> SlackBotChannel:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("set exactly one of token_env or token_file (the token is a secret)")
        return self


class EmailChannel(SecretSource):
    """SMTP: STARTTLS (or implicit TLS) with authentication; plain-text and HTML parts."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS.")
    tls: bool = Field(default=False, description="Implicit TLS from the start (port 465).")
    username: str | None = None
    password_env: EnvName | None = None
    password_file: Path | None = None
    sender: str = Field(alias="from", min_length=3, description="From address.")
    to: list[str] = Field(min_length=1)
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the server.")
    verify_tls: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> EmailChannel:
        if self.starttls and self.tls:
            raise ValueError("starttls and tls exclude each other (tls is implicit TLS)")
        has_password = self.password_env is not None or self.password_file is not None
        if has_password and self.username is None:
            raise ValueError("a password needs a username")
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("set only one of password_env or password_file")
        return self


class WebhookChannel(SecretSource):
    """A JSON POST in the documented, versioned schema, signed with HMAC-SHA256."""

    url: str | None = Field(default=None, description="Receiver URL (when it holds no secret).")
    url_env: EnvName | None = None
    url_file: Path | None = None
    secret_env: EnvName | None = Field(default=None, description="Env var holding the signing key.")
    secret_file: Path | None = None
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannel:
        sources = [self.url, self.url_env, self.url_file]
        if sum(source is not None for source in sources) != 1:
            raise ValueError("set exactly one of url, url_env or url_file")
        return self


class AlertmanagerChannel(_Section):
    """Prometheus Alertmanager's API (POST /api/v2/alerts)."""

    url: str = Field(min_length=1, description="Base URL, e.g. http://alertmanager:9093")
    resend_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Firing alerts are posted again this often (Alertmanager resolves an alert "
        "it has not heard of for its resolve_timeout, 5 minutes by default).",
    )
    ca_file: Path | None = None


class TemplatesConfig(_Section):
    """Jinja2 template files overriding the defaults (sinks/alerts/templates.py)."""

    title: TemplateFile | None = Field(
        default=None, description="One line: Slack header, email subject."
    )
    text: TemplateFile | None = Field(
        default=None, description="Plain text body (console, email, Slack fallback)."
    )
    html: TemplateFile | None = Field(default=None, description="HTML body of emails.")
    alert: TemplateFile | None = Field(default=None, description="One alert's line (Slack).")


CHANNEL_KINDS = ("console", "file", "slack", "slack_bot", "email", "webhook", "alertmanager")
DEFAULT_RATE = {"slack": 1.0, "slack_bot": 1.0}


class ReceiverConfig(_Section):
    """A named destination: exactly one channel, its templates and its delivery limits."""

    name: str = Field(pattern=_NAME)
    console: ConsoleChannel | None = None
    file: FileChannel | None = None
    slack: SlackWebhookChannel | None = None
    slack_bot: SlackBotChannel | None = None
    email: EmailChannel | None = None
    webhook: WebhookChannel | None = None
    alertmanager: AlertmanagerChannel | None = None
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    rate_per_s: float | None = Field(
        default=None, gt=0, description="Messages per second (Slack: 1; others: unlimited)."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="One attempt's timeout.")

    @model_validator(mode="after")
    def _one_channel(self) -> ReceiverConfig:
        given = [kind for kind in CHANNEL_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a receiver has exactly one channel, one of {', '.join(CHANNEL_KINDS)} "
                f"(got {', '.join(given) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in CHANNEL_KINDS if getattr(self, kind) is not None)

    @property
    def channel(self) -> Any:
        return getattr(self, self.kind)

    @property
    def rate(self) -> float | None:
        return self.rate_per_s if self.rate_per_s is not None else DEFAULT_RATE.get(self.kind)


class RouteConfig(_Section):
    """A node of the routing tree. Unset options are inherited from the parent route."""

    name: str | None = Field(default=None, pattern=_NAME, description="Shown in group keys.")
    matchers: list[str] = Field(default_factory=list, description='e.g. team="payments"')
    receivers: list[str] | None = None
    group_by: list[str] | None = Field(
        default=None, description='Label names; ["..."] = every label (one group per alert).'
    )
    group_wait_s: float | None = Field(default=None, ge=0, le=86_400)
    group_interval_s: float | None = Field(default=None, gt=0, le=86_400)
    repeat_interval_s: float | None = Field(default=None, gt=0, le=30 * 86_400)
    send_resolved: bool | None = None
    run_summary: bool | None = Field(
        default=None, description="Also route each run's end (a run_finished alert) here."
    )
    continue_: bool = Field(
        default=False, alias="continue", description="Keep matching siblings after this route."
    )
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, values: list[str]) -> list[str]:
        for value in values:
            parse_matcher(value)
        return values

    @field_validator("group_by")
    @classmethod
    def _labels(cls, values: list[str] | None) -> list[str] | None:
        if values is not None and "..." in values and len(values) > 1:
            raise ValueError('"..." (every label) stands alone')
        return values

    def parsed_matchers(self) -> list[LabelMatcher]:
        return [parse_matcher(value) for value in self.matchers]


# What the root route has when the config leaves an option unset (children inherit).
ROOT_DEFAULTS: dict[str, Any] = {
    "group_by": ["run_id"],
    "group_wait_s": 10.0,
    "group_interval_s": 60.0,
    "repeat_interval_s": 4 * 3600.0,
    "send_resolved": True,
    "run_summary": False,
}


def _default_root() -> RouteConfig:
    return RouteConfig(receivers=[DEFAULT_RECEIVER], **ROOT_DEFAULTS)


class OwnerRule(_Section):
    """Labels added to the alerts of matching runs (a CODEOWNERS-style owner, a team)."""

    match: dict[str, str] = Field(
        description="Label -> glob (fnmatch) the run must match: repository, pipeline, branch, "
        "namespace, provider or a run label."
    )
    labels: dict[str, str] = Field(min_length=1)


class DeliveryConfig(_Section):
    """Retries of one message: jittered exponential backoff, capped; Retry-After honoured."""

    initial_backoff_s: float = Field(default=1.0, gt=0, le=600)
    max_backoff_s: float = Field(default=30.0, gt=0, le=3600)
    give_up_after_s: float = Field(
        default=900.0,
        gt=0,
        le=7 * 86_400,
        description="A message still failing this long after its first attempt is recorded "
        "failed; the next flush of its group tries again if its alerts still need telling.",
    )


class AlertingConfig(_Section):
    enabled: bool = Field(default=True, description="Run the dispatcher (sentinel up, alerts).")
    public_url: str = Field(
        default="http://127.0.0.1:8080", description="Base URL of the Sentinel web/API."
    )
    run_url: str = Field(
        default="{public_url}/runs/{run_id}",
        description="Link to a run's page: {public_url}, {run_id} (URL-quoted).",
    )
    group_id: str | None = Field(
        default=None, description="Consumer group; default <prefix>alerts."
    )
    start_at: Literal["latest", "earliest"] = Field(
        default="latest",
        description="Where a consumer group that never committed starts: latest = from now on "
        "(a new dispatcher on a cluster with history does not announce last week's anomalies); "
        "earliest = everything the topics still hold.",
    )
    route: RouteConfig = Field(default_factory=_default_root)
    receivers: list[ReceiverConfig] = Field(
        default_factory=lambda: [ReceiverConfig(name=DEFAULT_RECEIVER, console=ConsoleChannel())]
    )
    owners: list[OwnerRule] = Field(default_factory=list)
    pipeline_scoped_types: list[str] = Field(default_factory=lambda: list(PIPELINE_SCOPED_TYPES))
    pipeline_judge_wait_s: float = Field(
        default=300.0,
        ge=0,
        description="A finished run counts as judged (its pipeline-scoped findings are in) this "
        "long after the dispatcher saw it end.",
    )
    run_wait_s: float = Field(
        default=2.0, ge=0, le=600, description="An anomaly waits this long for its run snapshot."
    )
    retention_hours: float = Field(
        default=120.0,
        gt=0,
        description="The notification log and run records are kept this long after their last "
        "change (Alertmanager keeps its nflog 120 h).",
    )
    max_alerts_per_message: int = Field(default=20, ge=1, le=45)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)

    @model_validator(mode="after")
    def _consistent(self) -> AlertingConfig:
        if self.route.receivers is None:
            self.route.receivers = [DEFAULT_RECEIVER]
        names = [receiver.name for receiver in self.receivers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"receivers: names must be unique (repeated: {duplicates})")
        problems = _route_problems(self.route, set(names), "route", root=True)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def receiver(self, name: str) -> ReceiverConfig:
        return next(receiver for receiver in self.receivers if receiver.name == name)


def _route_problems(route: RouteConfig, known: set[str], path: str, root: bool) -> list[str]:
    problems: list[str] = []
    if root:
        if route.matchers:
            problems.append(f"{path}.matchers: the root route matches every alert; remove them")
        if not route.receivers:
            problems.append(f"{path}.receivers: the root route needs at least one receiver")
    for name in route.receivers or []:
        if name not in known:
            problems.append(f"{path}.receivers: unknown receiver {name!r} (known: {sorted(known)})")
    for index, child in enumerate(route.routes):
        problems.extend(_route_problems(child, known, f"{path}.routes[{index}]", root=False))
    return problems
