"""Matchers, the routing tree, labels, silences' rules and the alerting config (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from runtime.alerting_config import AlertingConfig, parse_matcher
from runtime.config import ConfigError, load_settings
from schemas.messages import AlertRun
from sinks.alerts.labels import run_labels
from sinks.alerts.matchers import matches
from sinks.alerts.nflog import needs_update
from sinks.alerts.routing import build_tree, group_key
from sinks.alerts.silence_rules import SilenceError, new_silence, parse_duration, parse_matchers
from tests.support.alerts import alerting, at


@pytest.mark.parametrize(
    ("text", "labels", "hit"),
    [
        ('team="web"', {"team": "web"}, True),
        ("team=web", {"team": "webby"}, False),
        ('team!="web"', {}, True),
        ('severity=~"error|critical"', {"severity": "critical"}, True),
        ('severity=~"error|critical"', {"severity": "errors"}, False),  # anchored
        ('branch!~"release/.*"', {"branch": "release/1.2"}, False),
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
    ],
)
def test_matchers_behave_as_in_alertmanager(text: str, labels: dict[str, str], hit: bool) -> None:
    assert matches(parse_matcher(text), labels) is hit


def test_a_matcher_prints_back_the_way_it_was_written() -> None:
    assert str(parse_matcher("team=~web|api")) == 'team=~"web|api"'


@pytest.mark.parametrize("text", ["team", 'team=="x"', 'team=~"(unclosed"', ' ="x"'])
def test_a_bad_matcher_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(text)


def test_children_inherit_unset_options_and_group_keys_carry_route_partition_labels() -> None:
    tree = build_tree(
        alerting(
            route={
                "group_wait_s": 7,
                "routes": [{"name": "team", "matchers": ['team="x"'], "group_by": ["pipeline"]}],
            }
        ).route
    )
    (child,) = tree.children
    assert (child.route_id, child.group_wait_s, child.receivers) == ("root/team", 7, ("console",))
    assert child.group_by == ("pipeline",) and tree.group_by == ("run_id",)
    labels = {"team": "x", "pipeline": "ci", "run_id": "r"}
    assert tree.match(labels) == [child]
    assert group_key(child, labels, 2) == 'root/team:p2:{pipeline="ci"}'
    every = build_tree(alerting(route={"group_by": ["..."]}).route)
    assert every.group_labels(labels) == labels


def test_run_labels_owners_never_override_what_the_run_says() -> None:
    run = AlertRun(
        run_id="r",
        partition=0,
        repository="acme/payments-api",
        pipeline="ci",
        labels={"team": "core", "pipeline": "spoofed"},
        first_seen=at(0),
        updated_at=at(0),
    )
    config = alerting(
        owners=[
            {"match": {"repository": "acme/payments-*"}, "labels": {"team": "pay", "tier": "1"}}
        ]
    )
    labels = run_labels(run, config.owners)
    assert labels["team"] == "core" and labels["tier"] == "1"
    assert labels["pipeline"] == "ci"  # built-in labels win over a run label of the same name


def test_needs_update_follows_alertmanagers_dedup_stage() -> None:
    from schemas.messages import NotificationLogEntry

    entry = NotificationLogEntry(
        receiver="r", firing_ids=["a", "b"], resolved_ids=["c"], sent_at=at(0), delivery_id="d"
    )
    assert needs_update(None, ["a"], [], True, 3600, at(1))
    assert not needs_update(None, [], ["a"], True, 3600, at(1))
    assert not needs_update(entry, ["a"], ["c"], True, 3600, at(1))  # a subset: nothing new
    assert needs_update(entry, ["a", "z"], [], True, 3600, at(1))  # grew
    assert needs_update(entry, [], ["a", "b"], False, 3600, at(1))  # all resolved: always
    assert needs_update(entry, ["a"], ["b", "c"], True, 3600, at(1))  # resolved grew
    assert not needs_update(entry, ["a"], ["b", "c"], False, 3600, at(1))
    assert needs_update(entry, ["a"], ["c"], True, 60, at(60))  # repeat interval passed


def test_silence_rules() -> None:
    now = at(0)
    matchers = parse_matchers(['team="web"'])
    silence = new_silence(matchers, "ops", "deploy", now, duration=parse_duration("1h30m"))
    assert silence.ends_at - silence.starts_at == timedelta(minutes=90)
    assert silence.state_at(now) == "active" and silence.state_at(at(5400)) == "expired"
    later = new_silence(matchers, "ops", "tonight", now, starts_at=at(60), duration=timedelta(1))
    assert later.state_at(now) == "pending"
    with pytest.raises(SilenceError, match="empty label"):
        new_silence(parse_matchers(['team!="x"']), "ops", "c", now, duration=timedelta(hours=1))
    with pytest.raises(SilenceError, match="365 days"):
        new_silence(matchers, "ops", "c", now, duration=timedelta(days=400))
    with pytest.raises(SilenceError, match="who"):
        new_silence(matchers, " ", "c", now, duration=timedelta(hours=1))


def test_config_errors_name_the_key(tmp_path: object) -> None:
    with pytest.raises(ValidationError) as raised:
        AlertingConfig.model_validate(
            {
                "route": {"routes": [{"receivers": ["nobody"]}]},
                "receivers": [{"name": "console", "console": {}}],
            }
        )
    assert "route.routes[0].receivers: unknown receiver 'nobody'" in str(raised.value)
    with pytest.raises(ValidationError, match="exactly one channel"):
        AlertingConfig.model_validate(
            {"receivers": [{"name": "console", "console": {}, "file": {"path": "/tmp/x"}}]}
        )


def test_a_secret_in_the_yaml_is_refused(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.yaml"
    path.write_text(
        "alerting:\n  receivers:\n    - name: console\n      console: {}\n"
        "    - name: mail\n      email: {host: h, from: a@b.c, to: [x@y.z], password: hunter2}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert any(
        p.startswith("alerting.receivers.1.email.password: secrets are not read from the YAML")
        for p in raised.value.problems
    )
