from __future__ import annotations

import json
from datetime import UTC, date, datetime

from sentinel.cli import build_parser
from sentinel.query import OutputFormat, QueryResult, analyst_queries, render

RESULT = QueryResult(
    ["run_id", "at", "tags", "rate"],
    [
        ["r1", datetime(2024, 5, 1, 12, 0, tzinfo=UTC), ["a", "b"], 0.25],
        ["r,2", date(2024, 5, 2), [], None],
    ],
)


def test_json_is_one_object_per_row() -> None:
    assert json.loads(render(RESULT, OutputFormat.JSON)) == [
        {"run_id": "r1", "at": "2024-05-01T12:00:00+00:00", "tags": ["a", "b"], "rate": 0.25},
        {"run_id": "r,2", "at": "2024-05-02", "tags": [], "rate": None},
    ]


def test_csv_quotes_and_leaves_null_empty() -> None:
    assert render(RESULT, OutputFormat.CSV).splitlines() == [
        "run_id,at,tags,rate",
        'r1,2024-05-01T12:00:00+00:00,"[""a"", ""b""]",0.25',
        '"r,2",2024-05-02,[],',
    ]


def test_table_aligns_columns_and_counts_rows() -> None:
    lines = render(RESULT, OutputFormat.TABLE).splitlines()
    assert lines[0].startswith("run_id | at ")
    assert len({line.index("|") for line in lines[:-1] if "|" in line}) == 1
    assert lines[-1] == "(2 rows)"
    empty = render(QueryResult(["x"], []), OutputFormat.TABLE).splitlines()
    assert empty[-1] == "(0 rows)"


def test_query_subcommand_and_the_documented_queries_exist() -> None:
    args = build_parser().parse_args(["query", "SELECT 1", "--format", "csv"])
    assert (args.sql, args.format) == ("SELECT 1", "csv")
    assert set(analyst_queries()) == {
        "slowest_tests_this_week",
        "flakiest_tests",
        "failure_rate_by_pipeline",
        "infra_failures_by_node",
    }
