"""Where a correlation key goes, and the ids of the signals derived from it (pure).

Routing (DESIGN.md "Runs and correlation")
    Keys of pods that a CI system owns (``github-runner:`` ARC runners, ``jenkins:`` agents)
    cannot name their run: only a CI event can (a BIND). Their signals leave with
    ``run_id=None`` and are routed by `correlation_key`. Every other key (``tekton:``,
    ``tekton-taskrun:``, ``argo:``, ``job:`` or a raw ``sentinel.io/run-id`` value) *is* the run
    id. `correlation_key` is always filled in when the input had one.
"""

from __future__ import annotations

import hashlib

LINK_PREFIXES = ("github-runner:", "jenkins:")
_ID_CHARS = 24


def route(correlation_key: str) -> tuple[str | None, str | None]:
    """(run_id, link_key): a standalone run is its key; a CI-owned key waits for a BIND."""
    if correlation_key.startswith(LINK_PREFIXES):
        return None, correlation_key
    return correlation_key, None


def signal_digest(*parts: object) -> str:
    """A signal id: a hash of what the signal is derived from, never of arrival order."""
    # Unit separator between parts: ("a", "bc") and ("ab", "c") must not collide.
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:_ID_CHARS]


def provider_of(key: str) -> str | None:
    """The provider a standalone run's key implies (None: the CI system describes the run)."""
    if key.startswith(LINK_PREFIXES):
        return None
    if key.startswith(("tekton:", "tekton-taskrun:")):
        return "tekton"
    if key.startswith("argo:"):
        return "argo"
    return "kubernetes"
