"""Header learning per stream: the shape of a container's headers from its first lines, and the
message left once a line's header is gone (falling back when a line is not of that shape)."""

from __future__ import annotations

from processors.logs.headers import HeaderShape, field_kind
from processors.logs.templates import LogTemplateMiner

BGL = [
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 "
    "RAS KERNEL INFO instruction cache parity error corrected",
    "- 1117838573 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.53.276129 R02-M1-N0-C:J12-U11 "
    "RAS KERNEL INFO instruction cache parity error corrected",
    "- 1117869872 2005.06.04 R23-M0-NE-C:J05-U01 2005-06-04-00.24.32.432192 R23-M0-NE-C:J05-U01 "
    "RAS KERNEL INFO 1146800 double-hummer alignment exceptions",
    "APPREAD 1117869876 2005.06.04 R27-M1-N4-I:J18-U11 2005-06-04-00.24.36.222560 "
    "R27-M1-N4-I:J18-U11 RAS APP FATAL ciod: failed to read message prefix on control stream",
    "- 1117869899 2005.06.04 R24-M1-N0-C:J09-U11 2005-06-04-00.24.59.761123 R24-M1-N0-C:J09-U11 "
    "RAS KERNEL INFO generating core.2275",
    "- 1117869903 2005.06.04 R30-M0-N9-C:J16-U01 2005-06-04-00.25.03.893022 R30-M0-N9-C:J16-U01 "
    "RAS KERNEL INFO generating core.862",
]
PIPES = [
    "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
    "20171223-22:15:29:615|Step_LSC|30002312|onExtend:1514038530000 14 0 4",
    "20171223-22:15:29:633|Step_StandReportReceiver|30002312|onReceive action: android.intent",
    "20171223-22:15:29:635|Step_LSC|30002312|processHandleBroadcastAction action:android.intent",
    "20171223-22:15:29:635|Step_StandStepCounter|30002312|flush sensor data",
    "20171223-22:15:29:636|Step_SPUtils|30002312| getTodayTotalDetailSteps = 1514038440000",
]
SYSLOG = [
    "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown",
    "Jun 14 15:16:02 combo sshd(pam_unix)[19937]: authentication failure; logname= uid=0",
    "Jun 15 02:04:59 combo su(pam_unix)[20885]: session opened for user cyrus by (uid=0)",
    "Jun 15 04:06:18 combo su(pam_unix)[21416]: session closed for user news",
    "Jun 15 04:06:20 combo logrotate: ALERT exited abnormally with [1]",
    "Jun 15 12:12:34 combo sshd(pam_unix)[23397]: check pass; user unknown",
]
PYTHON = [
    "2026-03-02 02:00:04,120 INFO [orders.api] POST /orders 201 order=84001 12ms",
    "2026-03-02 02:00:06,120 INFO [orders.api] POST /orders 201 order=84002 19ms",
    "2026-03-02 02:00:08,340 WARNING [orders.cache] redis latency 208ms above 200ms budget",
    "2026-03-02 02:00:09,301 ERROR [orders.payments] payment gateway returned 503 for order 84003",
    "2026-03-02 02:00:09,901 INFO [orders.payments] payment for order 84003 captured",
    "2026-03-02 02:00:10,120 INFO [orders.api] POST /orders 201 order=84004 13ms",
]


def test_typed_fields() -> None:
    for token in ["1117838570", "2005.06.03", "R02-M1-N0-C:J12-U11", "INFO", "[warn]", "-", "D"]:
        assert field_kind(token) == "typed", token
    for token in ["instruction", "combo", "Step_LSC", "payment"]:
        assert field_kind(token) is None, token


def test_a_header_of_epochs_dates_and_node_names_is_learned() -> None:
    shape = HeaderShape.learn(BGL)
    assert shape is not None
    assert shape.body(BGL[0]) == "instruction cache parity error corrected"
    assert shape.body(BGL[3]) == "ciod: failed to read message prefix on control stream"


def test_pipe_separated_headers_are_learned() -> None:
    shape = HeaderShape.learn(PIPES)
    assert shape is not None and shape.pipes
    assert shape.body(PIPES[0]) == "onStandStepChanged 3579"
    assert shape.body(PIPES[5]) == "getTodayTotalDetailSteps = 1514038440000"


def test_a_program_field_ends_the_header_even_without_a_pid() -> None:
    shape = HeaderShape.learn(SYSLOG)
    assert shape is not None and shape.colon_field
    assert shape.body(SYSLOG[0]) == "check pass; user unknown"
    assert shape.body(SYSLOG[4]) == "ALERT exited abnormally with [1]"


def test_a_line_of_another_shape_falls_back_to_the_generic_stripper() -> None:
    shape = HeaderShape.learn(PYTHON)
    assert shape is not None
    assert shape.body("Traceback (most recent call last):") is None
    assert shape.body('  File "/app/orders/notifications.py", line 88, in send') is None
    miner = LogTemplateMiner()
    assert miner.preprocess(PYTHON[3], shape) == miner.preprocess(PYTHON[3])


def test_lines_without_headers_learn_nothing() -> None:
    plain = ["starting worker", "connected to db", "ready", "serving on :8080", "shutting down"]
    assert HeaderShape.learn(plain) is None
    assert HeaderShape.learn(BGL[:3]) is None  # too few lines to tell


def test_mining_a_stream_groups_by_message_not_by_header() -> None:
    ids = [tid for tid, _ in LogTemplateMiner().mine(BGL)]
    # Both "generating core.N" lines are one template, both parity lines another.
    assert ids[4] == ids[5] and ids[0] == ids[1]
    assert len(set(ids)) == 4
