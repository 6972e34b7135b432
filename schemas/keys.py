"""What a message's Kafka key is, from its value (the `key` of its `TopicSpec`), and whether a
consumed message's key says what its value says.

Keys decide partitions: the tracker's table holds a run on the partition of its run id, the
dispatcher's state follows the partition of its input, a container's log lines keep their order
only within one partition, and compaction keeps the last value per key. A message whose key does
not match its value would put state on the wrong partition (or be compacted away under another
key), so the consumers refuse it to the dead-letter topic with the reason (`key_problem`).

The producers key their messages with the same functions (`object_key`, `stream_key`), so
what they write and what the consumers expect cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from schemas.topics import TopicSpec

KEY_MISMATCH = "KeyMismatch"  # the dead letter's error_type

Fields = Mapping[str, Any] | BaseModel


def object_key(namespace: str | None, name: str) -> str:
    """`sentinel.k8s`: ``namespace/name``, or just ``name`` for a cluster-scoped object."""
    return f"{namespace}/{name}" if namespace else name


def stream_key(namespace: str, pod: str, container: str) -> str:
    """`sentinel.logs`: ``namespace/pod/container`` (order holds per container stream)."""
    return f"{namespace}/{pod}/{container}"


def _field(value: Fields, name: str) -> Any:
    if isinstance(value, BaseModel):
        return getattr(value, name, None)
    return value.get(name)


def _text(value: Fields, name: str) -> str | None:
    found = _field(value, name)
    return found if isinstance(found, str) else None


def _run_key(value: Fields) -> str | None:
    return _text(value, "run_id")


def _object_key(value: Fields) -> str | None:
    name = _text(value, "name")
    return None if name is None else object_key(_text(value, "namespace"), name)


def _stream_key(value: Fields) -> str | None:
    parts = [_text(value, field) for field in ("namespace", "pod", "container")]
    namespace, pod, container = parts
    if namespace is None or pod is None or container is None:
        return None
    return stream_key(namespace, pod, container)


# TopicSpec.key -> how a value gives it. Keys not derived from the value alone (the DLQ's origin,
# a delivery's channel) are not listed: nothing to check.
_DERIVED: dict[str, Callable[[Fields], str | None]] = {
    "run_id": _run_key,
    "namespace/name": _object_key,
    "namespace/pod/container": _stream_key,
}


def expected_key(spec: TopicSpec, value: Fields) -> str | None:
    """The key `value` (a model, or a row made from one) must carry on `spec`'s topic; None when
    the topic's key is not derived from the value alone, or the value lacks the fields."""
    derive = _DERIVED.get(spec.key)
    return None if derive is None else derive(value)


def key_problem(spec: TopicSpec, key: bytes | None, value: Fields) -> str | None:
    """Why `key` cannot be the key of `value` on `spec`'s topic (naming the key expected), or
    None when it can (or the topic's key is not derived from its value)."""
    expected = expected_key(spec, value)
    if expected is None or (key is not None and key == expected.encode()):
        return None  # the common case, checked for every message: no text built
    what = (
        f"messages on {spec.suffix} are keyed by the {spec.key} of their {spec.model.__name__}, "
        f"here {expected!r}"
    )
    if key is None:
        return f"the message has no key: {what}"
    return f"key {key.decode(errors='replace')!r} does not match the value: {what}"
