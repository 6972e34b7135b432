"""A receiver's channel from its config, with its secrets read from the environment or files."""

from __future__ import annotations

from runtime.alerting_config import AlertingConfig, ReceiverConfig
from runtime.config import ConfigError
from sinks.alerts.channels.base import Channel
from sinks.alerts.channels.console import Console, File
from sinks.alerts.channels.email import Email
from sinks.alerts.channels.http import Alertmanager, Webhook
from sinks.alerts.channels.slack import SlackBot, SlackWebhook


def build_channels(config: AlertingConfig, source: str = "alerting") -> dict[str, Channel]:
    """Every receiver's channel; a missing secret is a ConfigError naming its key."""
    channels: dict[str, Channel] = {}
    problems: list[str] = []
    for index, receiver in enumerate(config.receivers):
        try:
            channels[receiver.name] = _build(receiver, config, f"alerting.receivers[{index}]")
        except _Missing as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(source, problems)
    return channels


class _Missing(Exception):
    pass


def _secret(receiver: ReceiverConfig, prefix: str, key: str, required: bool) -> str | None:
    channel = receiver.channel
    try:
        value: str | None = channel.secret(prefix)
    except OSError as exc:
        raise _Missing(f"{key}.{prefix}_file: cannot read it ({exc.strerror})") from exc
    if value is None and required:
        source = channel.describe(prefix)
        raise _Missing(f"{key}.{prefix}_env/{prefix}_file: no value in {source}")
    return value


def _build(receiver: ReceiverConfig, config: AlertingConfig, key: str) -> Channel:
    kind, timeout = receiver.kind, receiver.timeout_s
    if receiver.console is not None:
        return Console(receiver.console, config)
    if receiver.file is not None:
        return File(receiver.file, config)
    if receiver.slack is not None:
        url = _secret(receiver, "url", f"{key}.slack", required=True)
        assert url is not None
        return SlackWebhook(receiver.slack, url, timeout)
    if receiver.slack_bot is not None:
        token = _secret(receiver, "token", f"{key}.slack_bot", required=True)
        assert token is not None
        return SlackBot(receiver.slack_bot, token, timeout)
    if receiver.email is not None:
        has_password = receiver.email.password_env or receiver.email.password_file
        password = _secret(receiver, "password", f"{key}.email", required=bool(has_password))
        return Email(receiver.email, password, timeout)
    if receiver.webhook is not None:
        hook = receiver.webhook
        url = hook.url or _secret(receiver, "url", f"{key}.webhook", required=True)
        assert url is not None
        has_secret = hook.secret_env or hook.secret_file
        secret = _secret(receiver, "secret", f"{key}.webhook", required=bool(has_secret))
        return Webhook(hook, url, secret, config, timeout)
    if receiver.alertmanager is not None:
        return Alertmanager(receiver.alertmanager, config, timeout)
    raise _Missing(f"{key}: unknown channel {kind}")
