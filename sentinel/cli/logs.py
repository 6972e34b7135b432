"""``sentinel logs``: offline log analysis commands (no broker or store needed).

``sentinel logs mine [FILE]`` reads one message per line from FILE (default: stdin), mines Drain
templates over all of them (processors.logs.templates) and prints one JSON object per line:
``{"line": N, "template_id": "...", "template": "..."}`` with N 1-based. Each line gets the final
template of its cluster, after every line was seen.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from processors.logs.templates import LogTemplateMiner

__all__ = ["add_parser", "main", "mine"]


def mine(source: TextIO, out: TextIO, *, strip_headers: bool = True) -> int:
    """Mine templates for every line of ``source``; write JSON lines to ``out``. Returns 0."""
    lines = [line.rstrip("\r\n") for line in source]
    results = LogTemplateMiner(strip_headers=strip_headers).mine(lines)
    for n, (template_id, template) in enumerate(results, start=1):
        out.write(json.dumps({"line": n, "template_id": template_id, "template": template}) + "\n")
    out.flush()
    return 0


def main(args: argparse.Namespace) -> int:
    """Run the ``logs`` subcommand chosen in ``args`` (only ``mine`` so far)."""
    strip = not getattr(args, "no_strip_headers", False)
    path: str | None = getattr(args, "file", None)
    if path is None or path == "-":
        return mine(sys.stdin, sys.stdout, strip_headers=strip)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return mine(fh, sys.stdout, strip_headers=strip)
    except OSError as exc:
        print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``logs mine [FILE]`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    logs = subparsers.add_parser("logs", help="offline log analysis (no broker or store needed)")
    actions = logs.add_subparsers(dest="action", required=True)
    mine_cmd = actions.add_parser(
        "mine", help="group log lines into Drain templates; one JSON object per input line"
    )
    mine_cmd.add_argument("file", nargs="?", help="log file, one message per line (default: stdin)")
    mine_cmd.add_argument(
        "--no-strip-headers",
        action="store_true",
        help="mine whole lines (default: strip timestamp/level/logger headers first)",
    )
    mine_cmd.set_defaults(func=main)
    parser: argparse.ArgumentParser = logs
    return parser
