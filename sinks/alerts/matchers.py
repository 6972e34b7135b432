"""Label matchers as Alertmanager applies them (pure).

A matcher compares one label (a missing label is the empty string) with a value: equal, not
equal, or a regular expression anchored at both ends (``=~"error|critical"`` matches exactly
"error" or "critical", not "errors").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from schemas.messages import LabelMatcher


@lru_cache(maxsize=1024)
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(f"^(?:{expression})$")


def matches(matcher: LabelMatcher, labels: Mapping[str, str]) -> bool:
    value = labels.get(matcher.name, "")
    if matcher.is_regex:
        hit = _pattern(matcher.value).match(value) is not None
    else:
        hit = value == matcher.value
    return hit if matcher.is_equal else not hit


def matches_all(matchers: Iterable[LabelMatcher], labels: Mapping[str, str]) -> bool:
    return all(matches(matcher, labels) for matcher in matchers)
