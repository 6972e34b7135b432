"""What messages say and how they are shaped: templates, Slack blocks, webhook and Alertmanager
bodies, email parts, the console line (pure)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from runtime.config import ConfigError
from sinks.alerts.labels import evidence_line
from sinks.alerts.payloads import (
    alertmanager_alerts,
    console_line,
    email_message,
    sign,
    webhook_body,
    webhook_headers,
)
from sinks.alerts.slack_blocks import MAX_BLOCKS, message_blocks
from sinks.alerts.templates import Renderer, check_templates
from tests.support.alerts import alerting, group_messages

CONFIG = alerting(public_url="https://sentinel.example/", run_wait_s=0)


def rendered(count: int = 2, config=CONFIG):  # type: ignore[no-untyped-def]
    (note,) = group_messages(config, anomalies=count)
    return note, Renderer(config.receivers[0], config).render(note)


def test_the_default_title_says_severity_pipeline_branch_status_and_counts() -> None:
    _note, out = rendered(3)
    assert out.title == "[ERROR] ci #1 (main) — run running: 3 firing"
    assert "Run github:acme/shop:1:1: running · ci · main" in out.text
    assert "https://sentinel.example/runs/github%3Aacme%2Fshop%3A1%3A1" in out.text
    assert "- [error] oom_killed on pod-0 (new)" in out.text
    assert "oom_killed seen on pod-0" in out.text  # one line of evidence per anomaly


def test_html_is_escaped() -> None:
    config = alerting(run_wait_s=0)
    note, _out = rendered(1, config)
    hostile = note.firing[0].model_copy(update={"summary": "<script>alert(1)</script>"})
    note = note.__class__(**{**note.__dict__, "firing": (hostile,)})
    html = Renderer(config.receivers[0], config).render(note).html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_slack_blocks_respect_the_limits_and_say_how_many_were_left_out() -> None:
    config = alerting(max_alerts_per_message=45, run_wait_s=0)
    note, out = rendered(120, config)
    blocks = message_blocks(out, note)
    assert len(blocks) <= MAX_BLOCKS
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    assert out.title.endswith("120 firing")  # the title counts all, the blocks show 45
    lines = [b for b in blocks if b["type"] == "section" and "*oom_killed*" in json.dumps(b)]
    assert len(lines) == 45
    assert "+75 more" in json.dumps(blocks[-2])


def test_a_long_evidence_line_is_cut_to_slacks_section_limit() -> None:
    line = evidence_line({"message": "x" * 10_000})
    assert len(line) <= 300 and line.endswith("…")


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        ({"message": "Back-off pulling image"}, "Back-off pulling image"),
        ({"sample_lines": ["", "ERROR db timeout"]}, "ERROR db timeout"),
        (
            {"observed": 12.5, "baseline": 3.0, "threshold": 6},
            "observed 12.5, baseline 3, threshold 6",
        ),
        ({"restarts": 4, "pod": "p"}, "restarts=4, pod=p"),
    ],
)
def test_the_evidence_line_prefers_the_systems_own_words(
    evidence: dict[str, object], expected: str
) -> None:
    assert evidence_line(evidence) == expected


def test_the_webhook_body_is_versioned_and_signed_over_timestamp_and_body() -> None:
    note, out = rendered(2)
    body = webhook_body(note, out, CONFIG)
    headers = webhook_headers(note, body, "k3y", 1_800_000_000)
    expected = hmac.new(b"k3y", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Sentinel-Signature-256"] == f"sha256={expected}"
    assert headers["X-Sentinel-Timestamp"] == "1800000000"
    assert headers["X-Sentinel-Delivery"] == note.delivery_id
    assert sign("other", 1_800_000_000, body) != headers["X-Sentinel-Signature-256"]
    doc = json.loads(body)
    assert doc["schema_version"] == "1"
    assert set(doc) == {
        "schema_version", "delivery_id", "receiver", "status", "reason", "sequence",
        "group_key", "group_labels", "title", "text", "sent_at", "runs", "alerts",
    }  # fmt: skip
    assert set(doc["alerts"][0]) == {
        "id", "kind", "status", "new", "type", "category", "severity", "subject", "summary",
        "evidence", "labels", "run_id", "starts_at", "ends_at", "link",
    }  # fmt: skip


def test_alertmanager_alerts_have_valid_label_names_and_the_run_page() -> None:
    config = alerting(run_wait_s=0)
    (note,) = group_messages(config, anomalies=1)
    labelled = note.firing[0].model_copy(
        update={"labels": {**note.firing[0].labels, "app.kubernetes.io/name": "shop"}}
    )
    note = note.__class__(**{**note.__dict__, "firing": (labelled,)})
    (alert,) = alertmanager_alerts(note, config)
    assert alert["labels"]["alertname"] == "oom_killed"
    assert alert["labels"]["app_kubernetes_io_name"] == "shop"
    assert alert["generatorURL"].endswith("/runs/github%3Aacme%2Fshop%3A1%3A1")
    assert "endsAt" not in alert  # firing: Alertmanager keeps it while we re-send it


def test_an_email_has_text_and_html_parts_and_threads_per_group() -> None:
    config = alerting(
        receivers=[
            {
                "name": "console",
                "email": {"host": "smtp", "from": "s@example.com", "to": ["a@example.com"]},
            }
        ],
        run_wait_s=0,
    )
    note, out = rendered(2, config)
    assert config.receivers[0].email is not None
    message = email_message(note, out, config.receivers[0].email, "example.com")
    assert message["Subject"] == out.title
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["References"] == f"<{note.first_message_id}@example.com>"


def test_the_console_line_is_one_line() -> None:
    note, out = rendered(7)
    line = console_line(note, out)
    assert "\n" not in line and "(+2 more)" in line and line.startswith("ALERT ")


def test_a_template_naming_an_unknown_variable_is_a_config_error_naming_the_key(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "text.j2"
    bad.write_text("{% for a in firing %}{{ a.sumary }}{% endfor %}")
    config = alerting(receivers=[{"name": "console", "console": {}, "templates": {"text": bad}}])
    with pytest.raises(ConfigError) as raised:
        check_templates(config)
    (problem,) = raised.value.problems
    assert problem.startswith(f"alerting.receivers[0].templates.text ({bad})")
    assert "sumary" in problem


def test_templates_run_in_a_sandbox(tmp_path: Path) -> None:
    evil = tmp_path / "title.j2"
    evil.write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    config = alerting(receivers=[{"name": "console", "console": {}, "templates": {"title": evil}}])
    with pytest.raises(ConfigError, match="unsafe"):
        check_templates(config)
