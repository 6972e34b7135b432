"""Log template mining with Drain (pure: no Faust, no Kafka, no I/O).

`LogTemplateMiner` groups log messages into templates with the Drain algorithm (He et al.,
ICWS 2017) as implemented by the ``drain3`` library, after two generic, dataset-independent
preprocessing steps:

1. `strip_header` removes a common log header from a raw line: leading timestamps and dates
   (ISO 8601, syslog ``Dec 10 06:55:46``, ``[Sun Dec 04 04:47:44 2005]``, ``081109 203615``,
   ``17/06/09 20:10:40``), a severity word (``INFO``, ``[warn]``, ``E0102`` klog), pid / thread
   fields (``148``, ``[main]``, ``sshd[24200]:``) and a logger name ending in ``:`` or `` -``
   (``org.apache.hadoop.mapred.Task:``, ``dfs.DataNode$PacketResponder:``). Lines whose start does
   not look like a header are left alone. Disable with ``strip_headers=False`` when the input is
   already the message body.
2. `mask` replaces variable parts with named placeholders (``<IP>``, ``<NUM>``, ...): URLs,
   e-mail addresses, UUIDs, timestamps and dates, IPv4 / IPv6 addresses and host names with
   ports (``www.example.com:443`` is an ``<IP>`` too), MAC addresses, Kubernetes pod-name
   suffixes, durations with their unit as one token (``15 ms``, ``<1 sec``: ``<DUR>``), hex
   numbers and ids, file paths that contain digits, and finally any remaining token that
   contains a digit. A size restated in other units (``1188 bytes (1.16 KB)``) is reduced to
   its first statement first, so messages keep one token count.

Drain then compares a message with a template token by token (drain3's tree and clustering,
with one change to the similarity, see `_Drain`): a position where both hold a variable is
left out, since two variables agreeing says nothing about the template.

Configuration (one for every log source; users do not tune per source): see `MinerConfig`
and `DEFAULT_CONFIG`.

Template ids
    A template id is ``"T"`` plus the first 12 hex digits of the SHA-1 of the masked message that
    founded the Drain cluster. It is fixed for the life of the cluster even though the cluster's
    template text may still generalise (a token becomes ``<*>``) as more lines arrive. It is
    deterministic: the same lines in the same order give the same ids, and two miners that see
    the same founding message for a cluster (say, two runs of one job) give it the same id, which
    a per-miner counter would not. Two live clusters founded by the same masked message (possible
    when the first one's template generalised a lot) get ``-2``, ``-3``... suffixes.

`LogTemplateMiner.add` is streaming: it returns the template of the line's cluster as it is
after that line. `LogTemplateMiner.mine` reads all lines first and then reports, for each line,
the final template of its cluster (two passes; this is how Loghub grouping accuracy is computed).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from drain3.drain import Drain
from drain3.masking import AbstractMaskingInstruction, LogMasker, MaskingInstruction
from drain3.template_miner import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from processors.logs.headers import HeaderShape

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_MASKS",
    "LogTemplateMiner",
    "MinerConfig",
    "mask",
    "masking_instructions",
    "strip_header",
    "strip_header_rest",
]

# Token boundaries for masks: not inside a longer word (letters, digits, underscore).
_L = r"(?<![\w.\-])"
_R = r"(?![\w\-]|\.\w)"

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,:]\d{1,9})?"
_ISO_DATE = r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
_TZ = r"(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?"

_IPV4 = r"(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}"
_H16 = r"[0-9A-Fa-f]{1,4}"
# IPv6: full or ::-compressed forms (at least two colons), optionally bracketed with a port.
_IPV6 = (
    rf"(?:(?:{_H16}:){{7}}{_H16}"
    rf"|(?:{_H16}:){{1,7}}:(?:{_H16}(?::{_H16}){{0,6}})?"
    rf"|::(?:{_H16}(?::{_H16}){{0,6}})?)"
)
# Host names with a port (``www.example.com:443``): dotted labels ending in a lower-case alphabetic
# top-level label. A file name and line (``Foo.java:12``, ``main.go:42``, ``app.log:7``) or a
# field (``state.topAmount:180``) is not a host name.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_FILE_EXT = (
    r"(?:c|cc|cpp|cs|go|h|hpp|java|js|jsx|kt|m|mm|php|pl|py|rb|rs|scala|sh|swift|ts|tsx"
    r"|cfg|conf|csv|ini|json|log|properties|toml|txt|xml|yaml|yml)"
)
_HOST_PORT = rf"(?:{_LABEL}\.)+(?!{_FILE_EXT}:)[a-z]{{2,63}}:\d{{1,5}}"
# A number with a unit of time; a data size with the same size in other units in parentheses.
_NUMBER = r"\d+(?:[.,]\d+)?"
_SIZE = rf"{_NUMBER}\s?(?:[KMGTPE]i?B|kB|bytes?|B)"
_DUR_UNIT = (
    r"(?:ns|us|µs|ms|s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?|days?|millis(?:econds?)?)"
)
# Kubernetes random suffixes use the alphabet of k8s.io/apimachinery/pkg/util/rand (no vowels,
# no 0, 1, 3), so ``web-7d9f8c6b5-x2kzq`` and ``job-x2kzq`` are caught but ``check-state`` is not.
_K8S = r"[bcdfghjklmnpqrstvwxz2456789]"

DEFAULT_MASKS: tuple[tuple[str, str], ...] = (
    # URL first: it may contain IPs, paths, numbers.
    (r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]+", "URL"),
    (r"\b[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+\b", "EMAIL"),
    # Paths with at least one digit in them.
    (
        r"(?<![\w/])(?:[A-Za-z]:)?(?:[/\\][\w.@%+~\-]*)+(?<=\d)[\w.@%+~\-]*(?:[/\\][\w.@%+~\-]*)*",
        "PATH",
    ),
    (
        r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
        "UUID",
    ),
    # Timestamps and dates.
    (rf"{_L}{_ISO_DATE}(?:[T\s]{_TIME}{_TZ})?{_R}", "TS"),
    (rf"\b{_DAY},?\s+{_MONTH}\s+\d{{1,2}}\s+{_TIME}(?:\s+\d{{4}})?\b", "TS"),
    (rf"\b{_MONTH}\s+\d{{1,2}},?\s+(?:\d{{4}}\s+)?{_TIME}\b", "TS"),
    (rf"{_L}\d{{1,2}}/\d{{1,2}}/\d{{2,4}}(?:[\s:]{_TIME})?{_R}", "TS"),
    (rf"{_L}{_TIME}{_TZ}(?![\w\-])", "TS"),
    # Addresses (IPv6 before MAC and hex, IPv4 before numbers). Ports ride along.
    (rf"\[{_IPV6}\](?::\d+)?|{_L}{_IPV6}(?![\w:])", "IP"),
    (rf"{_L}{_IPV4}(?::\d{{1,5}})?(?![\w.])", "IP"),
    (rf"(?<![\w.\-@/:]){_HOST_PORT}(?![\w.:])", "IP"),
    (r"\b[0-9A-Fa-f]{2}(?:[:\-][0-9A-Fa-f]{2}){5}\b", "MAC"),
    # Kubernetes pod names: keep the workload name, mask the generated suffix.
    (rf"(?<=[a-z0-9]-)(?:{_K8S}{{6,10}}|\d{{6,10}})-{_K8S}{{5}}\b(?!-)", "POD"),
    (rf"(?<=[a-z0-9]-){_K8S}{{5}}\b(?!-)", "POD"),
    # Durations with their unit, as one token: ``15 ms``, ``2.5s``, ``<1 sec``.
    (rf"(?<![\w.\-<>+])[<>~+\-]?{_NUMBER}\s?{_DUR_UNIT}(?![\w\-])", "DUR"),
    # Hex numbers and hex ids (at least one digit, so plain words stay).
    (r"\b0[xX][0-9a-fA-F]+\b", "NUM"),
    (r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b", "NUM"),
    # Identifiers mixing letters and digits (blk_-123, job_1_0001, node-246), then numbers.
    (r"(?<![\w<>])(?=[\w\-$#@]*[A-Za-z_])[\w\-$#@]*\d[\w\-$#@]*", "NUM"),
    (r"(?<![\w<>])[-+]?\d+(?:\.\d+)*(?![\w<])", "NUM"),
)


@dataclass(frozen=True)
class MinerConfig:
    """Drain parameters and masks. `DEFAULT_CONFIG` is meant for every log source."""

    sim_th: float = 0.7
    depth: int = 5
    max_children: int = 100
    max_clusters: int | None = None
    extra_delimiters: tuple[str, ...] = ()
    masks: tuple[tuple[str, str], ...] = field(default=DEFAULT_MASKS)
    # A message no cluster of its prefix-tree branch takes joins a template of the same length
    # in another branch at this similarity (None: drain3's behaviour, branches never meet).
    cross_branch_sim: float | None = 0.9


DEFAULT_CONFIG = MinerConfig()


class _CollapseLists(AbstractMaskingInstruction):  # type: ignore[misc]
    """Last masking step: a list of like values inside one token (``<IP>,<IP>``) is one value."""

    _REGEX = re.compile(r"<(\w+)>(?:[,;|]<\1>)+")

    def __init__(self) -> None:
        super().__init__("LIST")

    def mask(self, content: str, mask_prefix: str, mask_suffix: str) -> str:
        return self._REGEX.sub(r"<\1>", content)


class _DropSizeRestatement(AbstractMaskingInstruction):  # type: ignore[misc]
    """First masking step: ``1188 bytes (1.16 KB)`` is one size, stated twice; keep the first.

    So a message has as many tokens whether or not the size was large enough to be restated.
    """

    _REGEX = re.compile(rf"(?<![\w.])({_SIZE})\s*\(\s*{_SIZE}\s*\)(?![\w\-])")

    def __init__(self) -> None:
        super().__init__("SIZE")

    def mask(self, content: str, mask_prefix: str, mask_suffix: str) -> str:
        return self._REGEX.sub(r"\1", content)


def masking_instructions(
    masks: Sequence[tuple[str, str]] = DEFAULT_MASKS,
) -> list[AbstractMaskingInstruction]:
    """drain3 masking instructions for ``masks`` (applied in order).

    Dropping a restated size comes first, list collapsing last.
    """
    out: list[AbstractMaskingInstruction] = [_DropSizeRestatement()]
    out.extend(MaskingInstruction(p, n) for p, n in masks)
    out.append(_CollapseLists())
    return out


_DEFAULT_MASKER = LogMasker(masking_instructions(), "<", ">")


class _TokenMasker:
    """The default masks applied token by token, with a cache: the same result as applying
    each mask to the whole line in turn (drain3's LogMasker, `_DEFAULT_MASKER`), two to three
    times faster on real logs, where most tokens repeat.

    Every default mask matches within a token except the few that may span whitespace (a date
    and its time, ``15 ms``, ``1188 bytes (1.16 KB)``). Those are applied to the line first,
    and only where they start a token (or follow an opening ``[(=`` ...): no earlier mask could
    have matched there (none takes a token that starts with a digit or a day or month name and
    holds no ``/``, ``@`` or ``://``). Then each token goes through every mask in order, cached;
    a mask is skipped when the token lacks every character it needs (its cue). The result is
    checked equal to drain3's on the Loghub lines (tests/unit/processors/logs/test_templates.py).
    """

    _MAX_CACHE = 100_000
    _SPANS = re.compile(r"\d\s")  # every whitespace-spanning default mask holds a digit, a space
    _TIME = re.compile(r"\d:\d")

    def __init__(self) -> None:
        instructions = masking_instructions(DEFAULT_MASKS)
        self._size, *self._token_masks, self._lists = instructions
        self._cued = [(i, _CUES.get(_pattern(i))) for i in self._token_masks]
        self._spanning = [
            (i, _regex(i), _SPAN_CUES[_pattern(i)])
            for i in instructions
            if _pattern(i) in _SPAN_CUES
        ]
        self._any_span = re.compile(
            "|".join(f"(?:{regex.pattern})" for _, regex, _ in self._spanning)
        )
        self._cache: dict[str, str] = {}
        self._lines: dict[str, str] = {}  # whole lines: many repeat once their header is gone

    def mask(self, line: str) -> str:
        known = self._lines.get(line)
        if known is not None:
            return known
        masked = self._mask_line(line)
        if len(self._lines) >= self._MAX_CACHE:
            self._lines.clear()
        self._lines[line] = masked
        return masked

    def _mask_line(self, line: str) -> str:
        if self._SPANS.search(line):
            line = self._mask_spans(line)
        cache = self._cache
        out = []
        for token in line.split():
            masked = cache.get(token)
            if masked is None:
                masked = self._mask_token(token)
                if len(cache) >= self._MAX_CACHE:
                    cache.clear()
                cache[token] = masked
            out.append(masked)
        return " ".join(out)

    def _mask_token(self, token: str) -> str:
        if token.isdigit():
            return "<NUM>"
        if token.isalpha():
            return token  # every mask needs a digit or one of @ : - / \\ (
        if _WORD_WITH_DIGIT.fullmatch(token):
            return "<NUM>"  # blk_123, x86_64, job0001: only the id masks take it, whole
        chars = frozenset(token)
        if "(" in chars:
            token = self._size.mask(token, "<", ">")
        for instruction, cue in self._cued:
            if cue is None or not cue.isdisjoint(chars):
                token = instruction.mask(token, "<", ">")
        if "<" in token:
            token = self._lists.mask(token, "<", ">")
        return token

    def _mask_spans(self, line: str) -> str:
        clock = self._TIME.search(line) is not None
        for instruction, regex, cue in self._spanning:
            if cue == ":" and not clock:
                continue  # a date or time that spans whitespace holds a time of day
            if cue and cue not in line:
                continue
            if not regex.search(line):
                continue
            pieces, last = [], 0
            for match in regex.finditer(line):
                start, end = match.span()
                text = match.group()
                if start > 0 and not (line[start - 1].isspace() or line[start - 1] in _OPENERS):
                    continue  # inside a token: an earlier mask may have had it
                if not any(c.isspace() for c in text):
                    continue  # one token: the token pass masks it, in order
                pieces.append(line[last:start])
                pieces.append(instruction.mask(text, "<", ">"))
                last = end
            if pieces:
                pieces.append(line[last:])
                line = "".join(pieces)
        return line


_WORD_WITH_DIGIT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[0-9][A-Za-z0-9_]*")
_SHARED: list[_TokenMasker] = []


def _token_masker() -> _TokenMasker:
    """One token masker (and cache) for the process: masking a token depends on nothing else."""
    if not _SHARED:
        _SHARED.append(_TokenMasker())
    return _SHARED[0]


# Characters a spanning mask may follow (``[Sun Dec 04 ...]``, ``when=2017-07-01 17:08:20``):
# no earlier mask takes a token that starts with them and then a digit or a day or month name.
_OPENERS = frozenset("[({<\"'=,;|")


def _regex(instruction: AbstractMaskingInstruction) -> re.Pattern[str]:
    regex = getattr(instruction, "regex", None) or getattr(instruction, "_REGEX", None)
    assert isinstance(regex, re.Pattern)
    return regex


def _pattern(instruction: AbstractMaskingInstruction) -> str:
    return _regex(instruction).pattern


_DIGITS = frozenset("0123456789")
# The characters one of which a token must hold for each default mask to match in it (read off
# the patterns). A mask without an entry always runs.
_CUES: dict[str, frozenset[str]] = {
    DEFAULT_MASKS[0][0]: frozenset(":"),  # URL (scheme://)
    DEFAULT_MASKS[1][0]: frozenset("@"),  # e-mail
    DEFAULT_MASKS[2][0]: frozenset("/\\"),  # path
    DEFAULT_MASKS[3][0]: frozenset("-"),  # UUID
    DEFAULT_MASKS[4][0]: _DIGITS,  # ISO date (and time)
    DEFAULT_MASKS[5][0]: frozenset(":"),  # Sun Dec 04 04:47:44 2005
    DEFAULT_MASKS[6][0]: frozenset(":"),  # Dec 10 06:55:46
    DEFAULT_MASKS[7][0]: frozenset("/"),  # 17/06/09 20:10:40
    DEFAULT_MASKS[8][0]: frozenset(":"),  # 04:47:44
    DEFAULT_MASKS[9][0]: frozenset(":"),  # IPv6
    DEFAULT_MASKS[10][0]: frozenset("."),  # IPv4
    DEFAULT_MASKS[11][0]: frozenset(":"),  # host:port
    DEFAULT_MASKS[12][0]: frozenset(":-"),  # MAC
    DEFAULT_MASKS[13][0]: frozenset("-"),  # pod suffixes
    DEFAULT_MASKS[14][0]: frozenset("-"),
    DEFAULT_MASKS[15][0]: _DIGITS,  # durations
    DEFAULT_MASKS[16][0]: frozenset("xX"),  # 0x hex
    DEFAULT_MASKS[17][0]: _DIGITS,  # hex ids
    DEFAULT_MASKS[18][0]: _DIGITS,  # ids with digits
    DEFAULT_MASKS[19][0]: _DIGITS,  # numbers
}
# The default masks that may span whitespace, each with a substring the line must hold for a
# spanning match ("" for none): every date or time that spans holds a time.
_SPAN_CUES: dict[str, str] = {
    _DropSizeRestatement._REGEX.pattern: "(",
    DEFAULT_MASKS[4][0]: ":",
    DEFAULT_MASKS[5][0]: ":",
    DEFAULT_MASKS[6][0]: ":",
    DEFAULT_MASKS[7][0]: "/",
    DEFAULT_MASKS[8][0]: ":",
    DEFAULT_MASKS[15][0]: "",
}


def mask(line: str, masks: Sequence[tuple[str, str]] = DEFAULT_MASKS) -> str:
    """Replace the variable parts of ``line`` with ``<NAME>`` placeholders (runs of whitespace
    become one space, as Drain splits on whitespace anyway)."""
    if masks is DEFAULT_MASKS:
        return _token_masker().mask(line)
    return " ".join(LogMasker(masking_instructions(masks), "<", ">").mask(line).split())


_LEVEL_WORDS = (
    r"(?:TRACE|DEBUG|INFO|INFORMATION|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|FATAL|CRITICAL|CRIT"
    r"|ALERT|EMERG|EMERGENCY|FINE|FINER|FINEST|CONFIG|VERBOSE|PANIC)"
)
_TS_HEADER = (
    # [Sun Dec 04 04:47:44 2005]  /  [10.30 16:49:06]  /  [2023-01-02T03:04:05Z]
    r"\[[^\]]*\d{1,2}:\d{2}[^\]]*\]",
    rf"{_ISO_DATE}(?:[T\s]{_TIME}{_TZ})?",
    rf"\d{{2,4}}/\d{{1,2}}/\d{{1,4}}(?:\s+{_TIME})?",
    rf"\d{{2}}-\d{{2}}\s+{_TIME}",  # logcat: 03-17 16:13:38.811
    rf"{_MONTH}\s+\d{{1,2}}(?:\s+\d{{4}})?\s+{_TIME}",
    rf"{_DAY}\s+{_MONTH}\s+\d{{1,2}}\s+{_TIME}(?:\s+\d{{4}})?",
    r"\d{6}\s+\d{6}",  # 081109 203615
    _TIME,
)
_TS_PREFIX = re.compile(r"^(?:" + "|".join(_TS_HEADER) + r")[,:]?(?:\s+|$)")
# A bracketed field, one level of nested brackets allowed: [main], [QuorumPeer[myid=1]/...@774]
_BRACKET = r"\[[^\[\]]{0,200}(?:\[[^\[\]]*\][^\[\]]{0,200})*\]"
_LEVEL_PREFIX = re.compile(
    rf"^(?:\[\s*{_LEVEL_WORDS}\s*\]|<{_LEVEL_WORDS}>|{_LEVEL_WORDS}(?=[\s:\]|]))"
    rf"(?::?\s+|$)",
    re.IGNORECASE,
)
# logcat single-letter level, only when a "Tag:" follows.
_LOGCAT_LEVEL = re.compile(r"^[VDIWEFA]\s+(?=[\w.$/\-]+\s*:)")
_KLOG_PREFIX = re.compile(r"^[IWEF]\d{4}\s+" + _TIME + r"\s+\d+\s+[\w.\-]+:\d+\]\s+")
_PID_PREFIX = re.compile(rf"^(?:\d+|\(\d+\)|{_BRACKET}|[-|])(?:\s+|$)")
# A logger / program name: dotted or $-nested identifiers, or prog[pid], ending in ':' or ' -'.
_LOGGER_PREFIX = re.compile(
    r"^(?:[A-Za-z_][\w$]*(?:[.$][\w$]+)+|[A-Za-z_][\w\-./()]*\[\d+\])(?::\s+|\s+-\s+|:$)"
)
# After a level: a dotted logger (two dots or more) without colon, then an optional
# [request context] (oslo.log style).
_BARE_LOGGER = re.compile(rf"^[A-Za-z_]\w*(?:\.\w+){{2,}}\s+(?:{_BRACKET}\s+)?")
_SYSLOG_HOST = re.compile(r"^[\w.\-]+\s+(?=[\w\-./()]+\[\d+\]:)")
_SOURCE_TOKEN = re.compile(r"^\S+\s+")


def strip_header(line: str) -> str:
    """Remove a common log header (timestamp, level, pid, thread, logger) from a raw line.

    Best effort and dataset-independent; returns the line unchanged (minus surrounding
    whitespace) when no header is recognised. One leading token before the timestamp is
    dropped too (``kubectl logs --prefix``, ``grep -H`` and file-name prefixes).
    """
    rest = line.strip()
    m = _KLOG_PREFIX.match(rest)
    if m:
        return rest[m.end() :] or rest
    m = _TS_PREFIX.match(rest)
    if not m:
        src = _SOURCE_TOKEN.match(rest)
        if src:
            m2 = _TS_PREFIX.match(rest[src.end() :])
            if m2:
                rest = rest[src.end() :]
                m = m2
    had_header = False
    for _ in range(2):  # timestamp may come in two fields (date, then time)
        if not m:
            break
        rest = rest[m.end() :]
        had_header = True
        m = _TS_PREFIX.match(rest)
    return strip_header_rest(rest, had_header) or line.strip()


def strip_header_rest(rest: str, had_header: bool, saw_level: bool = False) -> str:
    """What follows a header's timestamp (or a learned header, `processors.logs.headers`):
    host and program (syslog), pid, level, [thread] and "-" separators, and a logger name."""
    m = _SYSLOG_HOST.match(rest)
    if m and had_header:
        rest = rest[m.end() :]
    for _ in range(5):  # pid, level, [thread], "-" separators in any order
        m = _LEVEL_PREFIX.match(rest)
        if m:
            saw_level = True
        elif had_header or saw_level:
            m = _PID_PREFIX.match(rest) or _LOGCAT_LEVEL.match(rest)
        if not m:
            break
        rest = rest[m.end() :]
    m = _LOGGER_PREFIX.match(rest)
    if m:
        rest = rest[m.end() :]
    elif saw_level:
        m = _BARE_LOGGER.match(rest)
        if m:
            rest = rest[m.end() :]
    if saw_level or had_header:
        m = _PID_PREFIX.match(rest)
        if m and rest[: m.end()].strip() in ("-", "|"):
            rest = rest[m.end() :]
    return rest


_PLACEHOLDER = re.compile(r"[^\w<>]*<[A-Z]+>[^\w<>]*")


_WORD = re.compile(r"^[A-Za-z]+[,;]?$")


def _cluster_ids(node: Any) -> list[int]:
    """Every cluster id in a Drain prefix-tree node's subtree."""
    out: list[int] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.extend(current.cluster_ids)
        stack.extend(current.key_to_child_node.values())
    return out


class _Drain(Drain):  # type: ignore[misc]
    cross_branch_sim: float | None = None

    """drain3's Drain with a similarity that knows about mask placeholders.

    Drain's similarity of a template and a message of the same length is the fraction of positions
    where they agree. Here, positions where both hold a variable are left out of the fraction:
    the same placeholder token on both sides (``<NUM>``, or ``<IP>,`` with punctuation around
    it), or a placeholder in the message under a template's ``<*>``. Two variables agreeing
    says nothing about whether the messages share a template, so ``copy <NUM> <NUM> <NUM> done``
    and ``... failed`` are 1 of 2, not 4 of 5, alike (and not merged), while a message that
    differs from a template only in variables matches it fully. Elsewhere a template's ``<*>``
    counts as in drain3 (a position, not a match), and different placeholders (``<IP>`` vs
    ``<NUM>``) differ. The prefix tree, clustering and template updates are drain3's.
    """

    def get_seq_distance(
        self, seq1: Sequence[str], seq2: Sequence[str], include_params: bool
    ) -> tuple[float, int]:
        positions = 0
        alike = 0
        params = 0
        for token1, token2 in zip(seq1, seq2, strict=True):
            if token1 == self.param_str:
                params += 1
                if include_params:  # drain3's match(): a parameter position is a match
                    positions += 1
                    alike += 1
                elif "<" not in token2 or not _PLACEHOLDER.fullmatch(token2):
                    positions += 1
            elif token1 == token2:
                if "<" not in token1 or not _PLACEHOLDER.fullmatch(token1):
                    positions += 1
                    alike += 1
            else:
                positions += 1
        return (alike / positions if positions else 1.0), params

    def tree_search(
        self, root_node: Any, tokens: list[str], sim_th: float, include_params: bool
    ) -> Any:
        found = super().tree_search(root_node, tokens, sim_th, include_params)
        if found is not None or self.cross_branch_sim is None or len(tokens) < 3:
            return found
        # Drain routes on the first tokens, so a message whose first token varies (a job name,
        # a component: "com.apple.X: scheduler ... told me to run this job") founds a cluster
        # per value. A message nearly identical to a template of the same length in another
        # branch joins it instead.
        node = root_node.key_to_child_node.get(str(len(tokens)))
        if node is None:
            return None
        # Only where the routing tokens are all that differs (past them, every position agrees)
        # and the routing tokens that differ are identifiers, not words: "After Scheduling"
        # and "Before Scheduling" are two events, "com.apple.X:" and "com.apple.Y:" one.
        routed = max(1, self.max_node_depth - 1)
        candidates = []
        for cid in _cluster_ids(node):
            template = self.id_to_cluster[cid].log_template_tokens
            if self.get_seq_distance(template[routed:], tokens[routed:], True)[0] != 1.0:
                continue
            if all(
                mine == theirs or not (_WORD.match(mine) or _WORD.match(theirs))
                for mine, theirs in zip(tokens[:routed], template[:routed], strict=False)
            ):
                candidates.append(cid)
        return self.fast_match(candidates, tokens, self.cross_branch_sim, include_params)


class LogTemplateMiner:
    """Drain template miner with generic header stripping and masking.

    ``add(line)`` returns ``(template_id, template)`` for one line as soon as it is seen;
    ``mine(lines)`` returns, for every line, its cluster's template after all lines were seen.
    """

    def __init__(self, config: MinerConfig = DEFAULT_CONFIG, *, strip_headers: bool = True):
        self.config = config
        self.strip_headers = strip_headers
        tm_config = TemplateMinerConfig()
        tm_config.drain_sim_th = config.sim_th
        tm_config.drain_depth = config.depth
        tm_config.drain_max_children = config.max_children
        tm_config.drain_max_clusters = config.max_clusters
        tm_config.drain_extra_delimiters = list(config.extra_delimiters)
        tm_config.masking_instructions = masking_instructions(config.masks)
        tm_config.parametrize_numeric_tokens = True
        self._miner = TemplateMiner(config=tm_config)
        self._miner.drain = _Drain(
            sim_th=config.sim_th,
            depth=config.depth,
            max_children=config.max_children,
            max_clusters=config.max_clusters,
            extra_delimiters=list(config.extra_delimiters),
            param_str=self._miner.drain.param_str,
            parametrize_numeric_tokens=True,
        )
        self._miner.drain.cross_branch_sim = config.cross_branch_sim
        # The default masks token by token, with this miner's cache (a stream's or a
        # pipeline's tokens repeat); other masks through drain3's masker.
        self._token_masker = _TokenMasker() if config.masks is DEFAULT_MASKS else None
        self._ids: dict[int, str] = {}  # drain cluster id -> template id
        self._owner: dict[str, int] = {}  # template id -> drain cluster id

    def preprocess(self, line: str, shape: HeaderShape | None = None) -> str:
        """The text Drain sees for ``line``: header stripped (if enabled: the stream's learned
        `shape` when the line has it, else the generic stripper), then masked."""
        if not self.strip_headers:
            body = line.strip()
        else:
            learned = shape.body(line) if shape is not None else None
            if learned is not None and shape is not None and shape.complete:
                body = learned
            elif learned is not None and shape is not None:
                # The learned fields are gone; a logger, [thread] or program may follow.
                body = strip_header_rest(learned, True, shape.ends_with_level) or learned
            else:
                body = strip_header(line)
        if self._token_masker is not None:
            return self._token_masker.mask(body)
        return str(self._miner.masker.mask(body))

    def _template_id(self, cluster_id: int, founder: str) -> str:
        tid = self._ids.get(cluster_id)
        if tid is not None:
            return tid
        base = "T" + hashlib.sha1(founder.encode("utf-8")).hexdigest()[:12]
        tid, n = base, 1
        live = self._miner.drain.id_to_cluster
        while tid in self._owner and self._owner[tid] in live:
            n += 1
            tid = f"{base}-{n}"
        self._ids[cluster_id] = tid
        self._owner[tid] = cluster_id
        return tid

    def _add_masked(self, masked: str) -> tuple[int, str]:
        cluster, _change = self._miner.drain.add_log_message(masked)
        cid: int = cluster.cluster_id
        founder = " ".join(masked.split())
        self._template_id(cid, founder)
        return cid, str(cluster.get_template())

    def add(self, line: str, shape: HeaderShape | None = None) -> tuple[str, str]:
        """Add one line (of a stream whose header has `shape`, if known); return its template
        id and its cluster's template as of now."""
        cid, template = self._add_masked(self.preprocess(line, shape))
        return self._ids[cid], template

    def template(self, template_id: str) -> str | None:
        """Current template text of ``template_id`` (None if unknown or evicted)."""
        cid = self._owner.get(template_id)
        if cid is None:
            return None
        cluster = self._miner.drain.id_to_cluster.get(cid)
        return None if cluster is None else str(cluster.get_template())

    @property
    def templates(self) -> dict[str, str]:
        """Every live template: id -> current template text."""
        return {self._ids[c.cluster_id]: str(c.get_template()) for c in self._miner.drain.clusters}

    def mine(self, lines: Iterable[str]) -> list[tuple[str, str]]:
        """Add all ``lines`` (one stream: its header shape is learned from its first lines),
        then return each line's final ``(template_id, template)``."""
        given = list(lines)
        shape = HeaderShape.learn(given) if self.strip_headers else None
        cids = [self._add_masked(self.preprocess(line, shape))[0] for line in given]
        final = {c.cluster_id: str(c.get_template()) for c in self._miner.drain.clusters}
        return [(self._ids[cid], final.get(cid, "")) for cid in cids]
