"""What a message says: Jinja2 templates in a sandbox with StrictUndefined (pure).

Four templates per receiver, each with a default here and an optional override file
(`receivers[].templates`): ``title`` (one line: Slack header, email subject, console line),
``text`` (plain-text body), ``html`` (email HTML body, autoescaped) and ``alert`` (one alert's
line in Slack blocks). Every template sees the same context (`context`): ``status``, ``reason``,
``receiver``, ``group_key``, ``group_labels``, ``alerts`` / ``firing`` / ``resolved`` (each
alert: id, kind, type, category, severity, subject, summary, evidence, labels, status, new,
starts_at, ends_at, run_id, link), ``runs`` and ``run`` (the first run: run_id, provider,
repository, pipeline, branch, commit_sha, status, url, link, duration, tests), ``worst_severity``,
``counts``, ``truncated`` and ``public_url``; ``alert`` adds ``alert``.

`check_templates` renders every receiver's templates against a sample message at start, so an
unknown variable is a config error naming the receiver and template, not a failure at the first
alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from runtime.alerting_config import AlertingConfig, ReceiverConfig
from runtime.config import ConfigError
from schemas.messages import AlertInstance, AlertRun, Severity
from sinks.alerts.labels import human_duration
from sinks.alerts.notification import Notification

DEFAULT_TITLE = (
    "{% if status == 'resolved' %}[RESOLVED]{% else %}[{{ worst_severity | upper }}]{% endif %} "
    "{% if run %}{{ run.pipeline or run.run_id }}"
    "{% if run.pipeline and run.number %} #{{ run.number }}{% endif %}"
    "{% if run.branch %} ({{ run.branch }}){% endif %}"
    " — run {{ run.status or 'running' }}{% else %}{{ group_key }}{% endif %}"
    "{% if runs | length > 1 %} (+{{ runs | length - 1 }} runs){% endif %}"
    ": {% if counts.firing %}{{ counts.firing }} firing{% endif %}"
    "{% if counts.firing and counts.resolved %}, {% endif %}"
    "{% if counts.resolved %}{{ counts.resolved }} resolved{% endif %}"
)
DEFAULT_TEXT = """\
{% for r in runs -%}
Run {{ r.run_id }}: {{ r.status or 'running' }}{% if r.pipeline %} · {{ r.pipeline }}{% endif %}\
{% if r.branch %} · {{ r.branch }}{% endif %}{% if r.duration %} · {{ r.duration }}{% endif %}
  {{ r.link }}
{% endfor -%}
{% if firing %}
Firing ({{ firing | length }}):
{% for a in firing %}- [{{ a.severity }}] {{ a.summary }}{% if a.new %} (new){% endif %}
{% if a.evidence %}    {{ a.evidence }}
{% endif %}{% endfor %}{% endif -%}
{% if resolved %}
Resolved ({{ resolved | length }}):
{% for a in resolved %}- {{ a.summary }}
{% endfor %}{% endif -%}
{% if truncated %}
+{{ truncated }} more
{% endif %}"""
DEFAULT_HTML = """\
<h2>{{ title }}</h2>
{% for r in runs %}<p><a href="{{ r.link }}">{{ r.pipeline or r.run_id }}</a>: \
<b>{{ r.status or 'running' }}</b>{% if r.branch %} on {{ r.branch }}{% endif %}\
{% if r.duration %}, {{ r.duration }}{% endif %}</p>
{% endfor %}{% if firing %}<h3>Firing ({{ firing | length }})</h3><ul>
{% for a in firing %}<li><b>[{{ a.severity }}]</b> {{ a.summary }}\
{% if a.evidence %}<br><code>{{ a.evidence }}</code>{% endif %}</li>
{% endfor %}</ul>{% endif %}{% if resolved %}<h3>Resolved ({{ resolved | length }})</h3><ul>
{% for a in resolved %}<li>{{ a.summary }}</li>
{% endfor %}</ul>{% endif %}{% if truncated %}<p>+{{ truncated }} more</p>{% endif %}"""
DEFAULT_ALERT = (
    "{{ {'critical': ':red_circle:', 'error': ':red_circle:', 'warning': ':warning:'}"
    ".get(alert.severity, ':information_source:') if alert.status == 'firing' "
    "else ':white_check_mark:' }} *{{ alert.type }}*{% if alert.new %} (new){% endif %} "
    "{{ alert.summary }}{% if alert.evidence %}\n> {{ alert.evidence }}{% endif %}"
)
DEFAULTS = {
    "title": DEFAULT_TITLE,
    "text": DEFAULT_TEXT,
    "html": DEFAULT_HTML,
    "alert": DEFAULT_ALERT,
}
_PLAIN = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_HTML = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)


@dataclass(frozen=True)
class Rendered:
    title: str
    text: str
    html: str
    alert_lines: tuple[str, ...]
    alert_ids: tuple[str, ...]
    truncated: int
    runs: tuple[dict[str, Any], ...] = ()


class Renderer:
    """A receiver's compiled templates (defaults where it has no override)."""

    def __init__(self, receiver: ReceiverConfig, config: AlertingConfig) -> None:
        self.receiver = receiver
        self.config = config
        self.sources: dict[str, tuple[str, str]] = {}
        for name, default in DEFAULTS.items():
            path: Path | None = getattr(receiver.templates, name)
            self.sources[name] = (path.read_text(), str(path)) if path else (default, "default")
        self.templates = {
            name: (_HTML if name == "html" else _PLAIN).from_string(source)
            for name, (source, _origin) in self.sources.items()
        }

    def render(self, notification: Notification) -> Rendered:
        ctx = context(notification, self.config)
        title = " ".join(self.templates["title"].render(ctx).split())
        ctx["title"] = title
        lines = tuple(
            self.templates["alert"].render({**ctx, "alert": alert}).strip()
            for alert in ctx["alerts"]
        )
        return Rendered(
            title=title,
            text=self.templates["text"].render(ctx).strip() + "\n",
            html=self.templates["html"].render(ctx),
            alert_lines=lines,
            alert_ids=tuple(alert["id"] for alert in ctx["alerts"]),
            truncated=ctx["truncated"],
            runs=tuple(ctx["runs"]),
        )


def context(notification: Notification, config: AlertingConfig) -> dict[str, Any]:
    limit = config.max_alerts_per_message
    firing = [alert_view(a, "firing", notification, config) for a in notification.firing]
    resolved = [alert_view(a, "resolved", notification, config) for a in notification.resolved]
    if not notification.send_resolved:
        resolved = []
    # New things first, so a long group's message shows what changed before what was known.
    firing.sort(key=lambda a: not a["new"])
    shown = (firing + resolved)[:limit]
    runs = [_run(run, config) for run in notification.runs]
    return {
        "status": notification.status,
        "reason": notification.reason,
        "receiver": notification.receiver,
        "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "alerts": shown,
        "firing": [a for a in shown if a["status"] == "firing"],
        "resolved": [a for a in shown if a["status"] == "resolved"],
        "runs": runs,
        "run": runs[0] if runs else None,
        "worst_severity": notification.worst_severity.value,
        "counts": {
            "firing": len(notification.firing),
            "resolved": len(notification.resolved) if notification.send_resolved else 0,
            "new": len(notification.new_firing),
        },
        "truncated": len(firing) + len(resolved) - len(shown),
        "public_url": config.public_url.rstrip("/"),
        "sequence": notification.sequence,
        "title": "",
    }


def run_link(run_id: str, config: AlertingConfig) -> str:
    return config.run_url.format(
        public_url=config.public_url.rstrip("/"), run_id=quote(run_id, safe="")
    )


def alert_view(
    alert: AlertInstance, status: str, notification: Notification, config: AlertingConfig
) -> dict[str, Any]:
    """One alert as templates see it and as the webhook body carries it (one shape for both)."""
    new = alert.alert_id in (
        notification.new_firing if status == "firing" else notification.new_resolved
    )
    return {
        "id": alert.alert_id,
        "kind": alert.kind,
        "type": alert.labels.get("type", alert.kind),
        "category": alert.labels.get("category", ""),
        "severity": alert.severity.value,
        "subject": alert.subject,
        "summary": alert.summary,
        "evidence": alert.evidence,
        "labels": dict(alert.labels),
        "status": status,
        "new": new,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "run_id": alert.run_id,
        "link": run_link(alert.run_id, config),
    }


def _run(run: AlertRun, config: AlertingConfig) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "provider": run.provider,
        # "#812" reads well for GitHub runs and Jenkins builds; a Job's name does not.
        "number": run.provider_run_id if (run.provider_run_id or "").isdigit() else None,
        "repository": run.repository,
        "pipeline": run.pipeline,
        "branch": run.branch,
        "commit_sha": run.commit_sha,
        "status": run.status,
        "url": run.url,
        "link": run_link(run.run_id, config),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": run.duration_s,
        "duration": human_duration(run.duration_s) if run.duration_s is not None else None,
        "tests": run.tests.model_dump() if run.tests else None,
        "labels": dict(run.labels),
    }


def sample_notification() -> Notification:
    """A message with every field set, to check templates against at start."""
    from datetime import UTC, datetime

    from schemas.messages import TestCounts

    now = datetime(2026, 1, 1, tzinfo=UTC)
    run = AlertRun(
        run_id="github:acme/shop:1:1",
        partition=0,
        provider="github",
        provider_run_id="1",
        repository="acme/shop",
        pipeline="ci",
        branch="main",
        commit_sha="0" * 40,
        status="failed",
        url="https://ci.example/runs/1",
        labels={"team": "shop"},
        started_at=now,
        finished_at=now,
        duration_s=61.0,
        tests=TestCounts(total=2, passed=1, failed=1),
        first_seen=now,
        updated_at=now,
    )
    alerts = tuple(
        AlertInstance(
            alert_id=f"sample-{index}",
            run_id=run.run_id,
            labels={"type": "oom_killed", "category": "infra", "severity": "error"},
            summary="Container pytest of pod p was OOMKilled",
            subject="p/pytest",
            evidence="exit code 137",
            severity=Severity.ERROR,
            starts_at=now,
            ends_at=now if index else None,
            received_at=now,
            detected_at=now,
        )
        for index in range(2)
    )
    return Notification(
        delivery_id="sample",
        receiver="sample",
        group_key="root:p0:{}",
        partition=0,
        route_id="root",
        group_labels={"run_id": run.run_id},
        firing=alerts[:1],
        resolved=alerts[1:],
        new_firing=frozenset({"sample-0"}),
        new_resolved=frozenset({"sample-1"}),
        runs=(run,),
        reason="update",
        sequence=2,
        created_at=now,
    )


def check_templates(config: AlertingConfig, source: str = "alerting") -> dict[str, Renderer]:
    """Every receiver's renderer, each template rendered once against a sample message.

    Raises ConfigError naming ``alerting.receivers[i].templates.<name>`` and the problem.
    """
    renderers: dict[str, Renderer] = {}
    problems: list[str] = []
    sample = sample_notification()
    for index, receiver in enumerate(config.receivers):
        try:
            renderer = Renderer(receiver, config)
        except (TemplateError, OSError) as exc:
            problems.append(f"alerting.receivers[{index}].templates: {exc}")
            continue
        for name, template in renderer.templates.items():
            origin = renderer.sources[name][1]
            ctx = context(sample, config) | {"title": "sample title"}
            try:
                template.render({**ctx, "alert": ctx["alerts"][0]})
            except TemplateError as exc:
                problems.append(f"alerting.receivers[{index}].templates.{name} ({origin}): {exc}")
        renderers[receiver.name] = renderer
    if problems:
        raise ConfigError(source, problems)
    return renderers
