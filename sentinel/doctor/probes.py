"""The checks of `sentinel doctor`, each a thin probe of one outside system.

Nothing is changed anywhere: topics are listed, not created; migrations are compared, not
applied; Kubernetes permissions are asked with SelfSubjectAccessReview, not tried; alert
channels are connected to (TLS handshake, SMTP EHLO and login, Slack ``auth.test``,
Alertmanager ``/-/healthy``) without a message, unless `send_test`.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from runtime import troubleshooting as guide
from runtime.config import ConfigError, Settings
from sentinel.doctor.report import (
    Check,
    fail,
    migration_problems,
    ok,
    required_permissions,
    skip,
    topic_problems,
    warn,
)

TIMEOUT_S = 5.0


def effective_bootstrap(settings: Settings) -> tuple[str | None, str]:
    """The broker to check and where its address came from: the config, else the embedded
    stack running on the data directory (`sentinel up` writes its effective settings there)."""
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers, "kafka.bootstrap_servers"
    running = settings.embedded.data_dir / "worker-settings.yaml"
    try:
        data = yaml.safe_load(running.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None, ""
    servers = (data.get("kafka") or {}).get("bootstrap_servers")
    return (servers, f"the embedded stack's {running}") if servers else (None, "")


# --------------------------------------------------------------------------------------------
# Kafka


def check_kafka(settings: Settings) -> list[Check]:
    from confluent_kafka.admin import AdminClient

    from runtime.log_setup import kafka_logger
    from schemas.topics import ALL_TOPICS
    from sentinel.brokers import port_open

    bootstrap, source = effective_bootstrap(settings)
    if bootstrap is None:
        return [
            skip(
                "kafka",
                "no kafka.bootstrap_servers and no embedded stack running on "
                f"{settings.embedded.data_dir} (sentinel up and sentinel demo start one)",
            )
        ]
    fix = "start the broker or correct kafka.bootstrap_servers (and kafka.producer/consumer)"
    if not port_open(bootstrap, timeout=TIMEOUT_S):
        detail = f"nothing accepts connections at {bootstrap} (from {source})"
        return [fail("kafka", detail, fix, guide.BROKER_UNREACHABLE)]
    config = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": int(TIMEOUT_S * 1000),
        "logger": kafka_logger(probe=True),
        **settings.kafka.consumer,
    }
    try:
        metadata = AdminClient(config).list_topics(timeout=TIMEOUT_S)
    except Exception as exc:
        detail = f"{bootstrap} accepts connections but does not answer as Kafka: {exc}"
        return [fail("kafka", detail, fix, guide.BROKER_UNREACHABLE)]
    checks = [ok("kafka", f"{bootstrap} answers ({len(metadata.brokers)} broker(s))")]
    prefix, partitions = settings.topics.prefix, settings.topics.partitions
    expected = {spec.name(prefix): partitions for spec in ALL_TOPICS}
    found = {name: len(topic.partitions) for name, topic in metadata.topics.items()}
    missing, wrong = topic_problems(expected, found)
    if missing:
        detail = f"{len(missing)} of {len(expected)} missing: {', '.join(missing)}"
        fix = "run `sentinel topics create` (sentinel up creates them itself)"
        checks.append(fail("kafka topics", detail, fix, guide.TOPICS))
    elif wrong:
        fix = (
            f"topics joined by key need topics.partitions ({partitions}) partitions: set "
            "topics.partitions to what the cluster has, or recreate the topics"
        )
        checks.append(fail("kafka topics", "; ".join(wrong), fix, guide.TOPICS))
    else:
        detail = f"all {len(expected)} present with {partitions} partitions (prefix {prefix!r})"
        checks.append(ok("kafka topics", detail))
    return checks


# --------------------------------------------------------------------------------------------
# ClickHouse


def check_store(settings: Settings) -> list[Check]:
    from sinks.clickhouse.store import StoreLockedError, embedded_path, open_store, store_errors

    where = _store_where(settings)
    if not settings.store.dsn and not embedded_path(settings).exists():
        return [skip("store", f"no embedded store yet at {where} (sentinel up creates it)")]
    refused: tuple[type[BaseException], ...] = (*store_errors(), ValueError)
    try:
        store = open_store(settings, create_database=False)
    except StoreLockedError:
        return [_store_in_use(settings, where)]
    except refused as exc:
        return [_store_unreachable(where, exc)]
    try:
        if not store.ping():
            return [_store_unreachable(where, "no answer to ping")]
        version = store.client.server_version
        checks = [ok("store", f"{where} answers (ClickHouse {version})")]
        checks.append(_migrations(store))
    except store_errors() as exc:
        checks = [_store_unreachable(where, exc)]
    finally:
        store.close()
    return checks


def _store_where(settings: Settings) -> str:
    from sinks.clickhouse.store import embedded_path

    if settings.store.dsn:
        parsed = urlparse(settings.store.dsn)
        return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or ''}"
    return f"embedded engine at {embedded_path(settings)}"


def _store_unreachable(where: str, error: object) -> Check:
    fix = "check store.dsn, the server, and the password in store.password_env"
    detail = f"{where}: {str(error).splitlines()[0] if str(error) else error!r}"
    return fail("store", detail, fix, guide.STORE_UNREACHABLE)


def _store_in_use(settings: Settings, where: str) -> Check:
    """The embedded engine is owned by a running `sentinel up` / `demo`: ask its API."""
    import httpx

    url = f"http://{settings.api.host}:{settings.api.port}"
    try:
        ready = httpx.get(f"{url}/ready", timeout=TIMEOUT_S)
        stats = httpx.get(f"{url}/api/stats", timeout=TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError) as exc:
        detail = f"{where} is locked by another process and no API answers at {url} ({exc})"
        fix = "stop the process holding it, or point api.port at the one serving it"
        return fail("store", detail, fix, guide.STORE_LOCKED)
    if ready.status_code != 200 or not stats.get("store", {}).get("reachable"):
        detail = f"{where} is owned by the sentinel at {url}, which says: {ready.text[:200]}"
        return fail("store", detail, "see that process's log", guide.STORE_UNREACHABLE)
    from sentinel.api.ops import package_version

    same = stats.get("version") == package_version()
    note = "" if same else f" (its version {stats.get('version')}, this one {package_version()})"
    return ok(
        "store",
        f"{where} is owned by the running sentinel at {url}: ready; it applied the migrations "
        f"when it started{note}",
    )


def _migrations(store: Any) -> Check:
    from sinks.clickhouse.migrations import applied_checksums, load_migrations

    files = {m.version: m.checksum for m in load_migrations()}
    applied = applied_checksums(store)
    pending, changed = migration_problems(files, applied)
    if changed:
        detail = f"applied migrations changed since: {', '.join(changed)}"
        fix = "revert the edited .sql files and add new migration files instead"
        return fail("store migrations", detail, fix, guide.MIGRATIONS)
    if pending:
        detail = f"{len(pending)} of {len(files)} not applied: {', '.join(pending)}"
        fix = "run `sentinel migrate` (sentinel up, api --with-sink and sink migrate at start)"
        return fail("store migrations", detail, fix, guide.MIGRATIONS)
    return ok("store migrations", f"all {len(files)} applied (latest {max(files)})")


# --------------------------------------------------------------------------------------------
# Kubernetes


def kube_configured(settings: Settings) -> str | None:
    """Where the Kubernetes credentials would come from, or None when there are none."""
    from producers.k8s.client import IN_CLUSTER_ENV, use_in_cluster

    k8s = settings.k8s
    if use_in_cluster(k8s):
        return "the in-cluster service account" if os.environ.get(IN_CLUSTER_ENV) else "in-cluster"
    if k8s.kubeconfig is not None:
        return str(k8s.kubeconfig)
    for candidate in (os.environ.get("KUBECONFIG") or "").split(os.pathsep):
        if candidate and Path(candidate).expanduser().exists():
            return candidate
    default = Path("~/.kube/config").expanduser()
    return str(default) if default.exists() else None


def check_kubernetes(settings: Settings) -> list[Check]:
    source = kube_configured(settings)
    if source is None:
        return [
            skip(
                "kubernetes",
                "no kubeconfig and not in a cluster (only k8s-watch and log-stream need one)",
            )
        ]
    from kubernetes import client

    from producers.k8s.client import api_client
    from producers.k8s.leader import lease_namespace

    fix = "check the kubeconfig/context (k8s.kubeconfig, k8s.context) and that the API is up"
    try:
        api = api_client(settings.k8s)
    except Exception as exc:
        detail = f"cannot load credentials from {source}: {exc}"
        return [fail("kubernetes", detail, fix, guide.KUBERNETES_CONNECTION)]
    try:
        host = api.configuration.host
        try:
            version = client.VersionApi(api).get_code(_request_timeout=TIMEOUT_S)
        except Exception as exc:
            detail = f"{host} (from {source}) does not answer: {_first_line(exc)}"
            return [fail("kubernetes", detail, fix, guide.KUBERNETES_CONNECTION)]
        checks = [ok("kubernetes", f"{host} answers (Kubernetes {version.git_version})")]
        needed = required_permissions(settings, lease_namespace(settings.leader_election))
        checks.extend(_permissions(api, needed))
        return checks
    finally:
        api.close()


def _permissions(api: Any, needed: list[Any]) -> list[Check]:
    from kubernetes import client

    authz = client.AuthorizationV1Api(api)
    by_component: dict[str, list[str]] = {}
    denied: dict[str, list[str]] = {}
    for permission in needed:
        review = client.V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1",
            kind="SelfSubjectAccessReview",
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=permission.verb,
                    group=permission.group,
                    resource=permission.resource,
                    subresource=permission.subresource or None,
                    namespace=permission.namespace,
                )
            ),
        )
        answer = authz.create_self_subject_access_review(review, _request_timeout=TIMEOUT_S)
        by_component.setdefault(permission.component, []).append(permission.label())
        if answer.status is None or not answer.status.allowed:
            denied.setdefault(permission.component, []).append(permission.label())
    checks = []
    for component, labels in by_component.items():
        name = f"kubernetes RBAC ({component})"
        if component in denied:
            detail = "not allowed: " + "; ".join(denied[component])
            fix = (
                "grant them to the service account or user (deploy/kubernetes has the "
                "ClusterRole the components need)"
            )
            anchor = guide.LOGS_NOT_STREAMING if component == "log-stream" else guide.RBAC_DENIED
            checks.append(fail(name, detail, fix, anchor))
        else:
            checks.append(ok(name, f"all {len(labels)} allowed"))
    return checks


# --------------------------------------------------------------------------------------------
# webhooks


def check_webhooks(settings: Settings) -> list[Check]:
    from runtime.config import GENERIC_TOKEN_ENV, GITHUB_SECRET_ENV, JENKINS_TOKEN_ENV

    checks = []
    if settings.github_webhook_secret() is not None:
        checks.append(ok("webhook secret (github)", "set: signatures are verified"))
    else:
        checks.append(
            warn(
                "webhook secret (github)",
                "not set: anyone who can reach the API can post runs",
                f"set {GITHUB_SECRET_ENV} (or webhooks.github.secret_file) to the secret "
                "configured on GitHub",
                guide.WEBHOOK_SECRETS,
            )
        )
    for name, env, token, hooks in (
        ("jenkins", JENKINS_TOKEN_ENV, settings.jenkins_webhook_token(), settings.webhooks.jenkins),
        ("generic", GENERIC_TOKEN_ENV, settings.generic_webhook_token(), settings.webhooks.generic),
    ):
        title = f"webhook token ({name})"
        if token is not None:
            checks.append(ok(title, "set: posts need it as a bearer token"))
        elif hooks.allow_unauthenticated:
            detail = "not set and allow_unauthenticated: posts are accepted without a token"
            checks.append(warn(title, detail, f"set {env}", guide.WEBHOOK_SECRETS))
        else:
            detail = "not set: the endpoint refuses every post (401)"
            fix = f"set {env} if this CI system posts here"
            checks.append(warn(title, detail, fix, guide.WEBHOOK_SECRETS))
    return checks


# --------------------------------------------------------------------------------------------
# alert channels


def check_channels(settings: Settings, send_test: bool = False) -> list[Check]:
    alerting = settings.alerting
    if not alerting.enabled:
        return [skip("alerts", "alerting.enabled is false")]
    from sinks.alerts.channels.factory import build_channels

    try:
        channels = build_channels(alerting)
    except ConfigError as exc:
        fix = "set the secrets the receivers name"
        return [fail("alerts", "; ".join(exc.problems), fix, guide.ALERTS_NOT_SENDING)]
    checks = []
    for receiver in alerting.receivers:
        name = f"alert channel {receiver.name} ({receiver.kind})"
        try:
            if send_test:
                detail = _send_test(alerting, receiver.name, channels[receiver.name])
            else:
                detail = _reach(receiver, channels[receiver.name])
            checks.append(ok(name, detail))
        except Exception as exc:
            fix = "check the receiver's address, credentials and network path"
            checks.append(fail(name, _first_line(exc), fix, guide.ALERTS_NOT_SENDING))
    return checks


def _reach(receiver: Any, channel: Any) -> str:
    """Reach the service without sending a message; a description of what answered."""
    kind = receiver.kind
    if kind == "console":
        return f"prints to {receiver.console.stream}"
    if kind == "file":
        folder = receiver.file.path.expanduser().resolve().parent
        if not os.access(folder if folder.exists() else folder.parent, os.W_OK):
            raise PermissionError(f"cannot write in {folder}")
        return f"appends to {receiver.file.path}"
    if kind == "slack_bot":
        answer = asyncio.run(_auth_test(channel))
        return f"token valid for team {answer.get('team')!r} as {answer.get('user')!r}"
    if kind == "email":
        return _smtp_login(receiver.email, channel)
    if kind == "alertmanager":
        return _alertmanager_healthy(receiver.alertmanager.url, receiver.timeout_s)
    url = channel.url if kind == "webhook" else channel.client.url
    return _connect(url, receiver.timeout_s)


async def _auth_test(channel: Any) -> dict[str, Any]:
    try:
        answer = await channel.client.auth_test()
        return dict(answer.data)
    finally:
        await channel.close()


def _connect(url: str, timeout_s: float) -> str:
    """A TCP connection and, for https, a verified TLS handshake: the service is there."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        if parsed.scheme == "https":
            with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                pass
    return f"{parsed.scheme}://{host}:{port} accepts connections (nothing sent)"


def _alertmanager_healthy(url: str, timeout_s: float) -> str:
    import httpx

    answer = httpx.get(url.rstrip("/") + "/-/healthy", timeout=timeout_s)
    answer.raise_for_status()
    return f"{url} is healthy"


def _smtp_login(email: Any, channel: Any) -> str:
    """EHLO, STARTTLS and AUTH as the channel would (its own TLS context), then QUIT: no mail."""
    context = channel.tls_context
    smtp_class: Callable[..., smtplib.SMTP] = smtplib.SMTP_SSL if email.tls else smtplib.SMTP
    extra = {"context": context} if email.tls else {}
    with smtp_class(email.host, email.port, timeout=TIMEOUT_S, **extra) as smtp:
        smtp.ehlo()
        if email.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if email.username:
            smtp.login(email.username, channel.password or "")
        done = "logged in as " + email.username if email.username else "no login configured"
    return f"{email.host}:{email.port} answers; {done} (no mail sent)"


def _send_test(alerting: Any, receiver: str, channel: Any) -> str:
    """One real message through the receiver, as the dispatcher would send it."""
    from processors.anomalies.ids import anomaly_id
    from schemas.messages import Anomaly, AnomalyCategory, RunState, RunStatus, Severity
    from sinks.alerts.engine import AlertEngine
    from sinks.alerts.templates import check_templates

    now = datetime.now(UTC)
    run_id = "doctor:send-test"
    engine = AlertEngine(alerting)
    run = RunState(
        run_id=run_id,
        provider="sentinel",
        provider_run_id="send-test",
        pipeline="sentinel doctor",
        status=RunStatus.RUNNING,
        started_at=now,
        first_event_at=now,
        updated_at=now,
        version=1,
    )
    anomaly = Anomaly(
        anomaly_id=anomaly_id(run_id, "doctor_test", receiver, now, now),
        run_id=run_id,
        category=AnomalyCategory.STRUCTURE,
        type="doctor_test",
        severity=Severity.INFO,
        subject=receiver,
        summary="Test message from `sentinel doctor --send-test`: this receiver works.",
        evidence={},
        window_start=now,
        window_end=now,
        detected_at=now,
    )
    engine.observe_run(run, 0, now)
    engine.observe_anomaly(anomaly, 0, now)
    notes = [n for n in engine.tick(now + timedelta(days=1)) if n.receiver == receiver]
    if not notes:
        raise RuntimeError("the routing tree sends no message to this receiver")
    rendered = check_templates(alerting)[receiver].render(notes[0])

    async def send() -> Any:
        try:
            return await channel.send(notes[0], rendered)
        finally:
            await channel.close()

    result = asyncio.run(send())
    code = f" (HTTP {result.status_code})" if getattr(result, "status_code", None) else ""
    return f"test message sent{code}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return text.splitlines()[0][:300]
