"""Where the troubleshooting guide answers each common failure (docs/troubleshooting.md).

Error messages of those failures end with ``see docs/troubleshooting.md#<anchor>`` (`see`), and
`sentinel doctor` names the same sections; a test checks that every anchor named anywhere in
the code or the docs is a heading of that file.
"""

from __future__ import annotations

GUIDE = "docs/troubleshooting.md"

KUBERNETES_CONNECTION = "kubernetes-connection-failed"
RBAC_DENIED = "rbac-denied"
LOGS_NOT_STREAMING = "logs-not-streaming"
BAD_WEBHOOK_SIGNATURE = "bad-webhook-signature"
WEBHOOK_SECRETS = "webhook-secrets-not-set"
BROKER_UNREACHABLE = "broker-unreachable"
TOPICS = "topics-missing-or-wrong-partitions"
STORE_UNREACHABLE = "store-unreachable"
STORE_LOCKED = "embedded-store-in-use"
MIGRATIONS = "migrations-not-current"
ALERTS_NOT_SENDING = "alerts-not-sending"
CONFIG_INVALID = "config-invalid"

ANCHORS = (
    KUBERNETES_CONNECTION,
    RBAC_DENIED,
    LOGS_NOT_STREAMING,
    BAD_WEBHOOK_SIGNATURE,
    WEBHOOK_SECRETS,
    BROKER_UNREACHABLE,
    TOPICS,
    STORE_UNREACHABLE,
    STORE_LOCKED,
    MIGRATIONS,
    ALERTS_NOT_SENDING,
    CONFIG_INVALID,
)


def see(anchor: str) -> str:
    """The pointer an error message ends with."""
    return f"see {GUIDE}#{anchor}"
