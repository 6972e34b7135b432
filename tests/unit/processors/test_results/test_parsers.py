"""Test results parsed from pytest, go test, Surefire and Jest logs, and from JUnit XML."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.test_results.log_parsers import TestLogParser, clean_line
from producers.webhooks.junit_xml import JUnitXmlError, parse_junit_xml
from schemas.messages import LogLine, TestCounts, TestResult
from tests.support.paths import DATA

DATA = DATA / "test-logs"
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

Row = tuple[str | None, str, str, float | None, int]


def rows(results: list[TestResult]) -> list[Row]:
    return [(r.suite, r.name, r.status.value, r.duration_s, r.attempt) for r in results]


def parse_lines(lines: list[str], hint: str | None = None) -> list[TestResult]:
    parser = TestLogParser("run-1", hint)
    results: list[TestResult] = []
    for index, line in enumerate(lines):
        results.extend(parser.feed(line, T0 + timedelta(seconds=index)))
    return results + parser.finish()


def parse_file(name: str) -> list[TestResult]:
    return parse_lines((DATA / name).read_text(encoding="utf-8").splitlines())


CART = "tests.unit.test_cart"
CHECKOUT = "tests.unit.test_cart.TestCheckout"
PYTEST_EXPECTED: list[Row] = [
    (CART, "test_add_item", "passed", 0.01, 1),
    (CART, "test_total[two items]", "passed", None, 1),
    (CART, "test_total[discount [10%]]", "failed", None, 1),
    (CHECKOUT, "test_pay", "failed", None, 1),  # the RERUN line
    (CHECKOUT, "test_pay", "passed", 0.52, 2),
    (CHECKOUT, "test_refund", "skipped", None, 1),
    ("tests.unit.test_db", "test_connect", "error", 0.1, 1),
    ("tests.unit.test_db", "test_legacy", "skipped", None, 1),  # XFAIL
]
CALC = "github.com/acme/calc"
GO_EXPECTED: list[Row] = [
    (CALC, "TestAdd", "passed", 0.0, 1),
    (CALC, "TestDivide", "failed", 0.0, 1),
    (CALC, "TestDivide/by_zero", "failed", 0.0, 1),
    (CALC, "TestDivide/positive", "passed", 0.0, 1),
    (CALC, "TestDivide/negative_numbers", "passed", 0.0, 1),
    (CALC, "TestSlow", "skipped", 0.0, 1),
    (CALC, "TestParallelA", "passed", 0.12, 1),
    ("github.com/acme/calc/format", "TestFormat", "passed", 0.01, 1),
    ("github.com/acme/calc/internal/buf", "TestCrash", "failed", None, 1),  # panicked
]
SUREFIRE_2_EXPECTED: list[Row] = [
    ("com.acme.cart.CartTest", "testTotal", "failed", 0.012, 1),
    ("com.acme.cart.PaymentTest", "testCharge", "error", 0.2, 1),
]
SUREFIRE_3_EXPECTED: list[Row] = [
    ("com.acme.cart.CartTest", "testTotal", "failed", 0.011, 1),
    ("com.acme.cart.PaymentTest", "testCharge", "error", 0.201, 1),
]
CART_JS = "src/cart.test.js \u203a cart"
PAY_JS = "src/payment.test.js"
JEST_EXPECTED: list[Row] = [
    (CART_JS, "adds an item", "passed", 0.003, 1),
    (CART_JS, "sums totals", "passed", None, 1),
    (f"{CART_JS} \u203a discounts", "applies 10%", "passed", 0.001, 1),
    (f"{CART_JS} \u203a discounts", "stacks coupons", "skipped", None, 1),
    (CART_JS, "supports gift cards", "skipped", None, 1),  # todo
    (f"{PAY_JS} \u203a payment", "validates card", "passed", 0.002, 1),
    (f"{PAY_JS} \u203a payment", "charges the card", "failed", 5.012, 1),
    (PAY_JS, "refunds", "failed", 0.004, 1),
]
LOG_SAMPLES: dict[str, tuple[str, list[Row]]] = {
    "pytest-verbose-rerun.log": ("pytest-log", PYTEST_EXPECTED),
    "go-test-v.log": ("go-log", GO_EXPECTED),
    "surefire-2.x.log": ("surefire-log", SUREFIRE_2_EXPECTED),
    "surefire-3.x.log": ("surefire-log", SUREFIRE_3_EXPECTED),
    "jest-verbose.log": ("jest-log", JEST_EXPECTED),
}


@pytest.mark.parametrize("name", sorted(LOG_SAMPLES))
def test_log_sample_gives_exactly_the_expected_tests(name: str) -> None:
    source, expected = LOG_SAMPLES[name]
    results = parse_file(name)
    assert rows(results) == expected
    assert {r.source for r in results} == {source}
    assert {r.run_id for r in results} == {"run-1"}


@pytest.mark.parametrize("name", sorted(LOG_SAMPLES))
def test_whole_file_in_one_feed_equals_line_by_line(name: str) -> None:
    text = (DATA / name).read_text(encoding="utf-8")
    parser = TestLogParser("run-1")
    whole = parser.feed(text, T0) + parser.finish()
    by_line = parse_file(name)
    assert [r.model_dump(exclude={"event_time", "received_at"}) for r in whole] == [
        r.model_dump(exclude={"event_time", "received_at"}) for r in by_line
    ]


@pytest.mark.parametrize("name", sorted(LOG_SAMPLES))
def test_source_hint_gives_the_same_as_detection(name: str) -> None:
    source, expected = LOG_SAMPLES[name]
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    assert rows(parse_lines(lines, hint=source)) == expected


def test_failure_messages_are_attached() -> None:
    messages = {(r.name, r.attempt): r.message for r in parse_file("pytest-verbose-rerun.log")}
    assert messages[("test_total[discount [10%]]", 1)] == "assert 90.0 == 91.0"
    assert messages[("test_connect", 1)] == "ConnectionError: db down"
    assert messages[("test_add_item", 1)] is None
    go = {r.name: r.message for r in parse_file("go-test-v.log")}
    assert go["TestDivide/by_zero"] == "calc_test.go:27: Divide(1, 0): expected an error, got nil"
    assert go["TestCrash"] is not None and go["TestCrash"].startswith("panic: runtime error")
    assert go["TestSlow"] == "calc_test.go:40: skipping slow test in -short mode"
    surefire = [r.message for r in parse_file("surefire-3.x.log")]
    assert surefire == [
        "org.opentest4j.AssertionFailedError: expected: <91.0> but was: <90.0>",
        "java.net.ConnectException: Connection refused",
    ]
    jest = {r.name: r.message for r in parse_file("jest-verbose.log")}
    assert jest["charges the card"] == 'thrown: "Exceeded timeout of 5000 ms for a test.'
    assert jest["refunds"] == "expect(received).toBe(expected) // Object.is equality"


def test_results_carry_the_event_time_of_the_line_that_concluded_them() -> None:
    lines = (DATA / "go-test-v.log").read_text(encoding="utf-8").splitlines()
    results = parse_lines(lines)
    assert results[0].event_time == T0 + timedelta(seconds=lines.index("--- PASS: TestAdd (0.00s)"))


def test_log_line_messages_use_their_own_event_time() -> None:
    parser = TestLogParser("run-9")
    stamp = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    lines = ["=== RUN   TestA", "--- PASS: TestA (0.50s)", "ok  \texample.com/a\t0.6s"]
    results: list[TestResult] = []
    for text in lines:
        log = LogLine(namespace="ci", pod="p", container="c", line=text, event_time=stamp)
        results.extend(parser.feed(log))
    assert rows(results) == [("example.com/a", "TestA", "passed", 0.5, 1)]
    assert results[0].event_time == stamp and results[0].run_id == "run-9"


def test_pytest_xdist_lines_and_summary_without_verbose() -> None:
    lines = [
        "============================= test session starts ==============================",
        "[gw1] [ 50%] PASSED tests/test_api.py::test_get",
        "[gw0] [100%] FAILED tests/test_api.py::TestPost::test_create[user-1]",
        "=========================== short test summary info ============================",
        "FAILED tests/test_api.py::TestPost::test_create[user-1] - KeyError: 'id'",
        "FAILED tests/test_other.py::test_only_in_summary - assert False",
        "========================= 2 failed, 1 passed in 0.31s ==========================",
    ]
    results = parse_lines(lines)
    assert rows(results) == [
        ("tests.test_api", "test_get", "passed", None, 1),
        ("tests.test_api.TestPost", "test_create[user-1]", "failed", None, 1),
        ("tests.test_other", "test_only_in_summary", "failed", None, 1),
    ]
    assert [r.message for r in results] == [None, "KeyError: 'id'", "assert False"]


def test_pytest_teardown_error_after_pass_is_one_error() -> None:
    lines = [
        "tests/test_x.py::test_a PASSED                                            [100%]",
        "tests/test_x.py::test_a ERROR                                             [100%]",
        "===================== 1 passed, 1 error in 0.05s =====================",
    ]
    assert rows(parse_lines(lines)) == [("tests.test_x", "test_a", "error", None, 1)]


def test_pytest_run_twice_in_one_stream_counts_attempts() -> None:
    session = [
        "tests/test_x.py::test_flaky FAILED                                        [100%]",
        "============================== 1 failed in 0.02s ==============================",
    ]
    results = parse_lines([*session, session[0].replace("FAILED", "PASSED"), session[1]])
    assert rows(results) == [
        ("tests.test_x", "test_flaky", "failed", None, 1),
        ("tests.test_x", "test_flaky", "passed", None, 2),
    ]


def test_go_count_repeats_are_attempts() -> None:
    lines = [
        "=== RUN   TestFlaky",
        "    flaky_test.go:9: timeout talking to fake server",
        "--- FAIL: TestFlaky (1.00s)",
        "=== RUN   TestFlaky",
        "--- PASS: TestFlaky (0.02s)",
        "FAIL",
        "FAIL\texample.com/flaky\t1.031s",
    ]
    results = parse_lines(lines)
    assert rows(results) == [
        ("example.com/flaky", "TestFlaky", "failed", 1.0, 1),
        ("example.com/flaky", "TestFlaky", "passed", 0.02, 2),
    ]
    assert results[0].message == "flaky_test.go:9: timeout talking to fake server"


def test_go_results_without_a_package_line_flush_at_finish() -> None:
    lines = ["=== RUN   TestA", "--- PASS: TestA (0.01s)", "=== RUN   TestHung"]
    results = parse_lines(lines)
    assert rows(results) == [
        (None, "TestA", "passed", 0.01, 1),
        (None, "TestHung", "failed", None, 1),
    ]


def test_surefire_3_0_milestone_and_plain_report_format() -> None:
    lines = [
        "[INFO]  T E S T S",
        "[INFO] Running com.acme.FooTest",
        "[INFO] com.acme.FooTest.testOk  Time elapsed: 0.003 s",
        "[WARNING] com.acme.FooTest.testSkip  Time elapsed: 0 s  <<< SKIPPED!",
        "[ERROR] com.acme.FooTest.testBar  Time elapsed: 0.01 s  <<< FAILURE!",
        "org.opentest4j.AssertionFailedError: not empty",
        "[ERROR] Tests run: 3, Failures: 1, Errors: 0, Skipped: 1, Time elapsed: 0.05 s"
        " <<< FAILURE! - in com.acme.FooTest",
        "[ERROR] com.acme.FooTest.testLast  Time elapsed: 0 s  <<< ERROR!",
    ]
    results = parse_lines(lines)
    assert rows(results) == [
        ("com.acme.FooTest", "testOk", "passed", 0.003, 1),
        ("com.acme.FooTest", "testSkip", "skipped", 0.0, 1),
        ("com.acme.FooTest", "testBar", "failed", 0.01, 1),
        ("com.acme.FooTest", "testLast", "error", 0.0, 1),
    ]
    assert [r.message for r in results] == [
        None,
        None,
        "org.opentest4j.AssertionFailedError: not empty",
        None,
    ]


def test_jest_without_verbose_names_its_failures() -> None:
    lines = [
        "PASS src/a.test.ts",
        "FAIL src/b.test.ts",
        "  ● math \u203a divides",
        "",
        "    Error: division by zero",
        "",
        "  ● Test suite failed to run",
        "",
        "    Cannot find module './missing' from 'src/b.test.ts'",
        "Tests:       1 failed, 3 passed, 4 total",
    ]
    results = parse_lines(lines)
    assert rows(results) == [
        ("src/b.test.ts \u203a math", "divides", "failed", None, 1),
        ("src/b.test.ts", "Test suite failed to run", "error", None, 1),
    ]
    assert results[0].message == "Error: division by zero"


def test_jest_windows_symbols_and_seconds() -> None:
    lines = [" PASS  api  src/w.test.js", "  √ quick (12 ms)", "  \u00d7 slow (1.5 s)", ""]
    assert rows(parse_lines(lines)) == [  # "api" is a multi-project displayName
        ("src/w.test.js", "quick", "passed", 0.012, 1),
        ("src/w.test.js", "slow", "failed", 1.5, 1),
    ]


def test_switching_tools_in_one_stream() -> None:
    pytest_lines = (DATA / "pytest-verbose-rerun.log").read_text(encoding="utf-8").splitlines()
    go_lines = (DATA / "go-test-v.log").read_text(encoding="utf-8").splitlines()
    results = parse_lines(pytest_lines[:13] + go_lines)
    assert [r.source for r in results] == ["pytest-log"] * 5 + ["go-log"] * len(GO_EXPECTED)
    assert rows(results)[5:] == GO_EXPECTED


def test_ansi_colours_and_ci_prefixes_are_removed() -> None:
    assert clean_line("\x1b[1;32m--- PASS\x1b[0m: TestA (0.00s)") == "--- PASS: TestA (0.00s)"
    assert clean_line("[\x1b[1;34mINFO\x1b[m] Running com.acme.FooTest") == (
        "Running com.acme.FooTest"
    )
    assert clean_line("##[group]Run go test -v ./...") == "Run go test -v ./..."
    assert clean_line("progress 10%\rprogress 100%") == "progress 100%"
    coloured = [
        "\x1b[1m\x1b[32m PASS \x1b[39m\x1b[22m \x1b[2msrc/\x1b[22m\x1b[1mx.test.js\x1b[22m",
        "  \x1b[32m✓\x1b[39m \x1b[2mworks (2 ms)\x1b[22m",
    ]
    assert rows(parse_lines(coloured)) == [("src/x.test.js", "works", "passed", 0.002, 1)]


def test_naive_event_time_is_taken_as_utc_and_missing_time_reuses_the_last() -> None:
    parser = TestLogParser("r")
    parser.feed("=== RUN   TestA", datetime(2026, 1, 1, 9, 0))
    parser.feed("--- PASS: TestA (0.00s)")
    [result] = parser.finish()
    assert result.event_time == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def test_counts_by_status() -> None:
    counts = TestCounts.of(parse_file("pytest-verbose-rerun.log"))
    assert counts == TestCounts(total=8, passed=3, failed=2, skipped=2, error=1)
    assert TestCounts.of([]) == TestCounts(total=0, passed=0, failed=0, skipped=0, error=0)


# ---------------------------------------------------------------------------------------------
# Robustness

INTERESTING_LINES = [
    line
    for name in sorted(LOG_SAMPLES)
    for line in (DATA / name).read_text(encoding="utf-8").splitlines()
] + ["--- PASS: ", "=== RUN", "FAIL", "  ● ", "○ skipped", "::", " PASS  x.js", "Running a"]


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.one_of(st.text(max_size=200), st.sampled_from(INTERESTING_LINES))),
    hint=st.one_of(st.none(), st.sampled_from(["pytest", "go", "surefire", "jest", "x"])),
)
def test_arbitrary_input_never_raises(lines: list[str], hint: str | None) -> None:
    parser = TestLogParser("r", hint)
    results = []
    for line in lines:
        results.extend(parser.feed(line, T0))
    results.extend(parser.finish())
    assert all(r.attempt >= 1 and r.run_id == "r" for r in results)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_arbitrary_bytes_give_results_or_junit_error(data: bytes) -> None:
    with contextlib.suppress(JUnitXmlError):  # anything else escaping is a bug
        parse_junit_xml(data, "r", T0)


def test_very_long_line_is_cheap() -> None:
    started = time.monotonic()
    parse_lines(["a::" + "b " * 200_000 + "PASSED", "=== RUN " + "x" * 500_000])
    assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------------------------------------
# JUnit XML


def junit(name: str) -> list[TestResult]:
    return parse_junit_xml((DATA / name).read_bytes(), "run-1", T0)


JUNIT_SAMPLES: dict[str, list[Row]] = {
    "junit-pytest.xml": [
        (CART, "test_add_item", "passed", 0.011, 1),
        (CART, "test_total[two items]", "passed", 0.002, 1),
        (CART, "test_total[discount [10%]]", "failed", 0.003, 1),
        (CHECKOUT, "test_pay", "passed", 0.522, 1),
        (CHECKOUT, "test_refund", "skipped", 0.0, 1),
        ("tests.unit.test_db", "test_connect", "error", 0.1, 1),
        ("tests.unit.test_db", "test_legacy", "skipped", 0.001, 1),
    ],
    "TEST-com.acme.cart.CartTest.xml": [
        ("com.acme.cart.CartTest", "testAdd", "passed", 0.004, 1),
        ("com.acme.cart.CartTest", "testTotal", "failed", 0.011, 1),
        ("com.acme.cart.CartTest", "testCoupons", "skipped", 0.0, 1),
        ("com.acme.cart.CartTest", "testCheckout", "failed", None, 1),  # flakyFailure
        ("com.acme.cart.CartTest", "testCheckout", "passed", 1234.5, 2),
    ],
    "junit-jest.xml": [
        ("cart adds an item", "cart adds an item", "passed", 0.003, 1),
        ("cart discounts stacks coupons", "cart discounts stacks coupons", "skipped", 0.0, 1),
        ("payment validates card", "payment validates card", "passed", 0.002, 1),
        ("payment charges the card", "payment charges the card", "failed", 5.012, 1),
        ("refunds", "refunds", "failed", 0.004, 1),
    ],
    "junit-go.xml": [
        (CALC, "TestAdd", "passed", 0.0, 1),
        (CALC, "TestDivide/by_zero", "failed", 0.0, 1),
        (CALC, "TestSlow", "skipped", 0.0, 1),
        (CALC, "TestAdd", "passed", 0.001, 2),  # go test -count=2
        ("nested", "TestFormat", "passed", 0.01, 1),  # no classname: the innermost suite
    ],
}


@pytest.mark.parametrize("name", sorted(JUNIT_SAMPLES))
def test_junit_sample_gives_exactly_the_expected_tests(name: str) -> None:
    results = junit(name)
    assert rows(results) == JUNIT_SAMPLES[name]
    assert {(r.source, r.run_id, r.event_time) for r in results} == {("junit-xml", "run-1", T0)}


def test_junit_messages() -> None:
    pytest_messages = {r.name: r.message for r in junit("junit-pytest.xml")}
    assert pytest_messages["test_refund"] == "refunds are disabled"
    assert pytest_messages["test_connect"] == 'failed on setup with "ConnectionError: db down"'
    jest_messages = [r.message for r in junit("junit-jest.xml") if r.status.value == "failed"]
    assert jest_messages == [
        'thrown: "Exceeded timeout of 5000 ms for a test.',
        "Error: expect(received).toBe(expected) // Object.is equality",
    ]


@pytest.mark.parametrize(
    ("name", "line", "column", "reason"),
    [
        ("junit-malformed-mismatched.xml", 4, 2, "mismatched tag"),
        ("junit-malformed-truncated.xml", 5, 4, "unclosed token"),
    ],
)
def test_malformed_junit_names_line_and_column(
    name: str, line: int, column: int, reason: str
) -> None:
    with pytest.raises(JUnitXmlError) as caught:
        junit(name)
    assert (caught.value.line, caught.value.column, caught.value.reason) == (line, column, reason)
    assert str(caught.value) == f"line {line}, column {column}: {reason}"
    assert isinstance(caught.value, ValueError)


def test_empty_and_non_junit_documents_are_refused() -> None:
    with pytest.raises(JUnitXmlError, match="line 1, column 0: no element found"):
        parse_junit_xml(b"", "r", T0)
    with pytest.raises(JUnitXmlError, match="root element is <html>"):
        junit("junit-not-junit.xml")
    with pytest.raises(JUnitXmlError, match="unknown encoding: x-unknown"):
        parse_junit_xml(b'<?xml version="1.0" encoding="x-unknown"?><testsuite/>', "r", T0)


@pytest.mark.parametrize("name", ["junit-bomb.xml", "junit-xxe.xml"])
def test_dtd_entity_bomb_and_external_entities_are_refused_quickly(name: str) -> None:
    started = time.monotonic()
    with pytest.raises(JUnitXmlError, match="DOCTYPE declarations are not allowed") as caught:
        junit(name)
    assert time.monotonic() - started < 0.5
    assert caught.value.line == 2


def test_size_limit() -> None:
    data = (DATA / "junit-pytest.xml").read_bytes()
    with pytest.raises(JUnitXmlError, match="over the limit of 100"):
        parse_junit_xml(data, "r", T0, max_bytes=100)
    assert len(parse_junit_xml(data, "r", T0, max_bytes=len(data))) == 7


def test_single_testsuite_root_and_naive_time() -> None:
    data = b'<testsuite name="S"><testcase name="t" time="bad"/></testsuite>'
    [result] = parse_junit_xml(data, "r", datetime(2026, 1, 1))
    assert rows([result]) == [("S", "t", "passed", None, 1)]
    assert result.event_time == datetime(2026, 1, 1, tzinfo=UTC)


def test_rerun_failures_are_later_attempts() -> None:
    data = b"""<testsuite name="S"><testcase classname="C" name="t" time="0.2">
        <failure message="first"/><rerunFailure message="second"/><rerunError message="third"/>
    </testcase></testsuite>"""
    results = parse_junit_xml(data, "r", T0)
    assert rows(results) == [
        ("C", "t", "failed", 0.2, 1),
        ("C", "t", "failed", None, 2),
        ("C", "t", "error", None, 3),
    ]
    assert [r.message for r in results] == ["first", "second", "third"]


def test_feed_many_equals_feeding_one_by_one() -> None:
    lines = (DATA / "jest-verbose.log").read_text(encoding="utf-8").splitlines()
    parser = TestLogParser("run-1")
    assert rows(parser.feed_many(lines, T0) + parser.finish()) == JEST_EXPECTED
    assert parser.finish() == []  # nothing left pending twice
