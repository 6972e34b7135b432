"""A dashboard query as the ClickHouse data source plugin sends it to ClickHouse.

Follows grafana/clickhouse-datasource (4.x) step by step:

1. the frontend's ``applyConditionalAll`` (src/data/CHDatasource.ts): from the last
   ``$__conditionalAll(condition, $var)`` backwards, the call becomes ``1=1`` when the variable's
   current value is ``$__all`` or empty, else the condition; the arguments are split on the
   commas at the call's own bracket depth;
2. Grafana's template variable interpolation with the plugin's default format (a multi-value
   variable becomes ``'a','b'``, a single value stays bare) and the ``:singlequote`` format;
3. the backend's macros (pkg/macros/macros.go): ``$__timeFilter(c)`` ->
   ``c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)``, ``$__timeFilter_ms`` with
   ``fromUnixTimestamp64Milli(<ms>)``, ``$__dateFilter(c)`` with ``toDate('YYYY-MM-DD')``,
   ``$__timeInterval(c)`` -> ``toStartOfInterval(toDateTime(c), INTERVAL <s> second)``,
   ``$__timeInterval_ms``, ``$__interval_s``, ``$__fromTime`` / ``$__toTime`` (+ ``_ms``).

A macro this module does not know is an error, so a dashboard cannot use one untested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

ALL = "$__all"
Value = str | Sequence[str]


def macro_args(text: str, open_paren: int) -> tuple[list[str], int]:
    """The arguments of the call whose ``(`` is at `open_paren`, and the index after ``)``."""
    depth, start, args = 0, open_paren + 1, []
    for index in range(open_paren, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:index])
                return args, index + 1
        elif char == "," and depth == 1:
            args.append(text[start:index])
            start = index + 1
    raise ValueError(f"unbalanced macro call at {open_paren}: {text[open_paren:][:80]!r}")


def apply_conditional_all(sql: str, variables: Mapping[str, Value]) -> str:
    macro = "$__conditionalAll("
    at = sql.rfind(macro)
    while at != -1:
        args, end = macro_args(sql, at + len(macro) - 1)
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments, got {len(args)}")
        found = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1].strip())
        phrase = args[0]
        if found:
            value = variables.get(found.group(0), "")
            if value in ("", ALL) or (not isinstance(value, str) and list(value) == [ALL]):
                phrase = "1=1"
        sql = sql[:at] + phrase + sql[end:]
        at = sql.rfind(macro)
    return sql


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def interpolate_variables(sql: str, variables: Mapping[str, Value]) -> str:
    def format_value(name: str, fmt: str | None) -> str:
        if name not in variables:
            raise KeyError(f"dashboard variable ${name} has no value in the test")
        value = variables[name]
        values = [value] if isinstance(value, str) else list(value)
        if fmt == "singlequote":
            return ",".join(_quote(v) for v in values)
        if fmt is not None:
            raise ValueError(f"format :{fmt} of ${name} is not supported by this expander")
        return value if isinstance(value, str) else ",".join(_quote(v) for v in values)

    braced = re.compile(r"\$\{(\w+)(?::(\w+))?\}")
    sql = braced.sub(lambda m: format_value(m.group(1), m.group(2)), sql)
    bare = re.compile(r"\$(?!__)(\w+)")
    return bare.sub(lambda m: format_value(m.group(1), None), sql)


def expand_macros(sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    seconds = max(interval_s, 1)

    def dt(moment: datetime) -> str:
        return f"toDateTime({int(moment.timestamp())})"

    def dt64(moment: datetime) -> str:
        return f"fromUnixTimestamp64Milli({int(moment.timestamp() * 1000)})"

    def date(moment: datetime) -> str:
        return f"toDate('{moment.strftime('%Y-%m-%d')}')"

    functions = {
        "timeFilter": lambda c: f"{c} >= {dt(start)} AND {c} <= {dt(end)}",
        "timeFilter_ms": lambda c: f"{c} >= {dt64(start)} AND {c} <= {dt64(end)}",
        "dateFilter": lambda c: f"{c} >= {date(start)} AND {c} <= {date(end)}",
        "timeInterval": lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {seconds} second)",
        "timeInterval_ms": lambda c: (
            f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {seconds * 1000} millisecond)"
        ),
    }
    constants = {
        "interval_s": str(seconds),
        "fromTime": dt(start),
        "toTime": dt(end),
        "fromTime_ms": dt64(start),
        "toTime_ms": dt64(end),
    }
    out, position = [], 0
    for match in re.finditer(r"\$__(\w+)", sql):
        if match.start() < position:
            continue
        name = match.group(1)
        out.append(sql[position : match.start()])
        after = match.end()
        if name in functions:
            args, after = macro_args(sql, after)
            if len(args) != 1:
                raise ValueError(f"$__{name} takes 1 argument, got {len(args)}")
            out.append(functions[name](args[0].strip()))
        elif name in constants:
            if sql[after : after + 2] == "()":
                after += 2
            out.append(constants[name])
        else:
            raise ValueError(
                f"macro $__{name} is not expanded by this test (add it from the plugin)"
            )
        position = after
    out.append(sql[position:])
    return "".join(out)


def expand(
    sql: str,
    variables: Mapping[str, Value],
    start: datetime,
    end: datetime,
    interval_s: int = 3600,
) -> str:
    """The SQL the plugin runs for this panel, variable selection and time range."""
    sql = apply_conditional_all(sql, variables)
    sql = interpolate_variables(sql, variables)
    return expand_macros(sql, start, end, interval_s)
