"""Header learning per log stream (pure: no Faust, no Kafka, no I/O).

A container's log stream has one header shape: every line starts with the same kinds of fields
(``2016-09-28 04:30:30, Info  CBS``; ``- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 ... RAS KERNEL
INFO``; ``20171223-22:15:29:606|Step_LSC|30002312|``). `HeaderShape.learn` reads a stream's first
lines and finds how many leading fields are header: fields that are typed (timestamps, dates,
numbers, levels, tokens with digits, separators) in nearly every line, fields with a handful of
values (components, hosts) that typed fields follow, and a field every line ends its header
with (``sshd[24200]:``, ``WindowManager:``).
`HeaderShape.body` removes that header from a line of the stream, or returns None when the
line does not have the stream's shape (a stack trace line, a banner): the caller falls back to
the generic stripper (`processors.logs.templates.strip_header`).

Why learn instead of matching known formats: a header that varies in its first tokens (epoch
seconds, node names, pipe-separated fields) defeats a generic stripper, and a header left in
place sends every line to a different Drain branch. One configuration serves every stream; the
shape is learned from the data of each.

Rules (one configuration; thresholds in `LearnConfig`)
    Fields are whitespace-separated tokens; when nearly every sample line has ``|`` in its first
    characters, ``|`` separates fields too.
    typed       a timestamp, date or time; a number; a level word (``INFO``, ``[warn]``) or a
                logcat level letter; any token with a digit (``node-246``,
                ``calvisitor-10-105-160-95``, ``[10.30 16:49:06]``); a separator (``-``, ``|``).
    header      the longest run of leading positions, each typed in at least ``typed_share`` of
                the sample, or holding at most ``max_values`` distinct words with a typed
                position later in the header (``unix.hw state_change.unavailable`` in HPC, ``RAS
                KERNEL`` in BGL). A standalone ``-`` after the first field ends the run (``[ts]
                program - message``). Then:
                * a program or tag, the first token ending with ``:`` within the next
                  ``colon_window`` + 1 fields (after a host, a [thread]), in ``typed_share`` of
                  the lines, ends the header there (``combo sshd[24200]:``, ``D WindowManager:``);
                * else a word with at most ``component_values`` values right after a level is a
                  component (``Info CBS``);
                * else a logger, a [thread] or a level may still follow: the generic stripper's
                  rules for what follows a timestamp (`strip_header_rest`) remove them.
    A header must hold at least one typed position; with fewer than ``min_lines`` sample lines
    nothing is learned. A line is of the shape when it has more fields than the header and its
    first and last typed fields are typed (a field in between may hold a value the first lines
    did not show).

Measured on the 16 Loghub datasets' raw lines (bench/loghub_accuracy.py, BENCHMARKS.md): with the
shape learned from each file's first 200 lines, raw-line grouping accuracy equals the accuracy
on Loghub's own Content column on all 16.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HeaderShape", "LearnConfig", "field_kind"]

_LEVELS = (
    "trace|debug|info|information|notice|warn|warning|error|err|severe|fatal|critical|crit"
    "|alert|emerg|emergency|fine|finer|finest|verbose|panic"
)
_LEVEL = re.compile(rf"^[\[<(]?(?:{_LEVELS})[\]>):,]?$", re.IGNORECASE)
_LOGCAT_LEVEL = re.compile(r"^[VDIWEFA]$")
_NUMBER = re.compile(r"^[(\[]?[-+]?(?:\d+(?:[.,:]\d+)*|0[xX][0-9a-fA-F]+)[)\],:]?$")
_DATE_TIME = re.compile(
    r"^[\[(]?(?:\d{1,4}[-/.]\d{1,2}(?:[-/.]\d{1,4})?(?:[-T:.]\d{1,2}){0,4}(?:[.,:]\d{1,9})?"
    r"|\d{1,2}:\d{2}(?::\d{1,2})?(?:[.,:]\d{1,9})?|\d{6,8}(?:[-T]\d{1,2}(?::\d{1,2}){1,2}"
    r"(?:[.,:]\d{1,9})?)?)(?:Z|[+-]\d{2}:?\d{2})?[\]),:]?$"
)
_MONTH_OR_DAY = re.compile(
    r"^\[?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?$"
)
_HAS_DIGIT = re.compile(r"\d")
_BRACKETED = re.compile(r"^[\[(<][^\])>]*\d[^\])>]*[\])>]:?$")
_SEPARATOR = re.compile(r"^[-|,:;=*>]+$")
_COLON_FIELD = re.compile(r"^\S+:$")


def field_kind(token: str) -> str | None:
    """``"typed"`` for a token that header fields are made of, None for a plain word."""
    if (
        _SEPARATOR.match(token)
        or _LEVEL.match(token)
        or _NUMBER.match(token)
        or _DATE_TIME.match(token)
        or _MONTH_OR_DAY.match(token)
        or _BRACKETED.match(token)
        or _LOGCAT_LEVEL.match(token)
        or _HAS_DIGIT.search(token)  # ids, hosts and nodes with digits: node-246, #8#/#8#
    ):
        return "typed"
    return None


@dataclass(frozen=True)
class LearnConfig:
    """How much evidence a header needs. One configuration for every stream."""

    sample_lines: int = 200  # the stream's first lines the shape is learned from
    min_lines: int = 5
    typed_share: float = 0.95
    max_values: int = 12  # a word field between typed fields: components, hosts
    component_values: int = 3  # a word field right after a level: a component (Info CBS)
    max_fields: int = 14
    colon_window: int = 3
    pipe_chars: int = 64


DEFAULT_LEARN = LearnConfig()


def _split(line: str, pipes: bool) -> list[tuple[int, str]]:
    """(end offset, token) of each leading field."""
    text = line.replace("|", " ") if pipes else line
    return [(m.end(), m.group()) for m in re.finditer(r"\S+", text)]


@dataclass(frozen=True)
class HeaderShape:
    """A stream's learned header: `fields` leading fields, then its terminator rule."""

    fields: int
    pipes: bool = False
    kinds: tuple[str | None, ...] = ()  # "typed" or None (a word field) per position
    vocab: tuple[frozenset[str], ...] = ()  # the values of each word field seen when learning
    colon_field: bool = False  # the header ends with the first field ending with ':'
    level_at: int | None = None  # the position of a level field, if the header has one
    config: LearnConfig = DEFAULT_LEARN

    @classmethod
    def learn(cls, lines: Sequence[str], config: LearnConfig = DEFAULT_LEARN) -> HeaderShape | None:
        """The header shape of a stream from its first lines; None when there is none."""
        sample = [line.strip() for line in lines[: config.sample_lines] if line.strip()]
        if len(sample) < config.min_lines:
            return None
        need = config.typed_share * len(sample)
        pipes = sum("|" in line[: config.pipe_chars] for line in sample) >= need
        rows = [[token for _, token in _split(line, pipes)] for line in sample]
        width = min(config.max_fields, max(len(row) for row in rows))
        kinds: list[str | None] = []
        vocab: list[frozenset[str]] = []
        for position in range(width):
            tokens = [row[position] if position < len(row) else "" for row in rows]
            typed = sum(1 for t in tokens if t and field_kind(t) == "typed")
            values = Counter(tokens)
            if position > 0 and sum(1 for t in tokens if _COLON_FIELD.match(t)) >= need:
                break  # a program or tag ("sshd[24200]:"): the colon rule below ends there
            if position > 0 and values["-"] >= need:  # "<header> - <message>"
                kinds.append("typed")
                vocab.append(frozenset())
                break
            if typed >= need:
                kinds.append("typed")
                vocab.append(frozenset())
            elif "" not in values and len(values) <= config.max_values:
                kinds.append(None)
                vocab.append(frozenset(values))
            else:
                break
        # A word field must have a typed field after it within the header.
        while kinds and kinds[-1] is None:
            kinds.pop()
            vocab.pop()
        if "typed" not in kinds:
            return None
        fields = len(kinds)
        rest = [row[fields:] for row in rows]
        firsts = [r[0] if r else "" for r in rest]
        # A program or tag ending with ':' within the next few fields (after a host, a
        # [thread]) in nearly every line ends the header there.
        colon = sum(1 for r in rest if _colon_end(r, config.colon_window) is not None) >= need
        level_at = next(
            (
                p
                for p in range(fields)
                if sum(1 for row in rows if p < len(row) and _LEVEL.match(row[p])) >= need
            ),
            None,
        )
        if not colon and level_at == fields - 1:
            values = Counter(firsts)
            if "" not in values and len(values) <= config.component_values:
                kinds.append(None)
                vocab.append(frozenset(values))
                fields += 1
        return cls(fields, pipes, tuple(kinds), tuple(vocab), colon, level_at, config)

    @property
    def ends_with_level(self) -> bool:
        return self.level_at is not None and self.level_at >= self.fields - 2

    def body(self, line: str) -> str | None:
        """The line without its header; None when the line does not have this shape: its
        first and last typed fields must be typed (a field in between may hold a value the
        first lines did not show, a node called ``full``); a stack frame or banner is not."""
        text = line.strip()
        fields = _split(text, self.pipes)
        if len(fields) <= self.fields:
            return None
        typed = [p for p, kind in enumerate(self.kinds) if kind == "typed"]
        for position in (typed[0], typed[-1]):
            if field_kind(fields[position][1]) != "typed":
                return None
        end = fields[self.fields - 1][0]
        if self.colon_field:
            found = _colon_end([t for _, t in fields[self.fields :]], self.config.colon_window)
            if found is None:
                return None
            end = fields[self.fields + found][0]
        body = text[end:].lstrip(" |\t")
        return body or None

    @property
    def complete(self) -> bool:
        """Whether the learned fields are the whole header (else a logger, [thread] or level
        may follow, for the generic stripper to remove)."""
        return self.colon_field or (self.level_at is not None and self.level_at < self.fields - 1)


def _colon_end(tokens: Sequence[str], window: int) -> int | None:
    """The index of the first token ending with ':' among the first `window` + 1, if any; it
    must leave something after it."""
    for index, token in enumerate(tokens[: window + 1]):
        if _COLON_FIELD.match(token):
            return index if index + 1 < len(tokens) else None
    return None
