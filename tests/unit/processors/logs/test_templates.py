"""Masking, header stripping and template ids of processors.logs.templates; the logs CLI."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from processors.logs.templates import LogTemplateMiner, mask, strip_header
from sentinel.cli import logs as logs_cli
from tests.support.paths import REPO


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("from 10.0.0.1:8080 ok", "from <IP> ok"),
        ("peer [2001:db8::1]:443 and fe80::1 up", "peer <IP> and <IP> up"),
        ("id 123e4567-e89b-12d3-a456-426614174000 done", "id <UUID> done"),
        ("at 2024-01-02T03:04:05.123Z and 12:00:01", "at <TS> and <TS>"),
        ("on Dec 10 06:55:46 and 2017/05/16", "on <TS> and <TS>"),
        ("ptr 0xdeadbeef sha 3f2a9c1d0e77", "ptr <NUM> sha <NUM>"),
        ("pod web-7d9f8c6b5-x2kzq restarted", "pod web-<POD> restarted"),
        ("pod build-x2kzq and check-state", "pod build-<POD> and check-state"),
        ("mail ops@example.com see https://ci.example.com/job/12", "mail <EMAIL> see <URL>"),
        ("wrote /var/lib/run/123/out.log not /usr/bin/env", "wrote <PATH> not /usr/bin/env"),
        ("block blk_-123 of job_1445_0020 size 42", "block <NUM> of <NUM> size <NUM>"),
        ("mac 00:1A:2b:3c:4d:5e", "mac <MAC>"),
        ("proxies 10.0.0.1,10.0.0.2 said", "proxies <IP> said"),
        # host names with a port are addresses; a source file and line is not
        ("www.example.com:443 via proxy.corp.example.org:5070", "<IP> via <IP>"),
        ("at Foo.java:123 main.go:42 app.log:7", "at Foo.java:<NUM> main.go:<NUM> app.log:<NUM>"),
        ("state.topAmount:180 done", "state.topAmount:<NUM> done"),
        # a size restated in other units is one size
        ("1188 bytes (1.16 KB) sent, 0 bytes received", "<NUM> bytes sent, <NUM> bytes received"),
        ("free 534.5 MB (0.5 GB) of 2 GB", "free <NUM> MB of <NUM> GB"),
        # durations with their unit are one token
        (
            "took 15 ms, lifetime <1 sec, retry in 2.5s",
            "took <DUR>, lifetime <DUR>, retry in <DUR>",
        ),
        ("wake time set -30 s", "wake time set <DUR>"),
        ("headroom=<memory:0, vCores:-27>", "headroom=<memory:<NUM>, vCores:<NUM>>"),
    ],
)
def test_mask(line: str, expected: str) -> None:
    assert mask(line) == expected


@pytest.mark.parametrize(
    ("line", "body"),
    [
        (
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
            "PacketResponder 1 terminating",
        ),
        (
            "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: "
            "Created MRAppMaster",
            "Created MRAppMaster",
        ),
        ("17/06/09 20:10:40 INFO spark.SecurityManager: Changing acls", "Changing acls"),
        (
            "[Sun Dec 04 04:47:44 2005] [error] mod_jk child in error state 6",
            "mod_jk child in error state 6",
        ),
        (
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user x from 1.2.3.4",
            "Invalid user x from 1.2.3.4",
        ),
        ("E0102 15:04:05.123456 1 main.go:12] bad thing", "bad thing"),
        ("2024-01-02T03:04:05Z ERROR failed to pull image", "failed to pull image"),
        ("[pod/web-1/app] 2024-01-02 03:04:05 WARN low disk", "low disk"),
        ("plain message without header", "plain message without header"),
        ("ERROR: no timestamp here", "no timestamp here"),
    ],
)
def test_strip_header(line: str, body: str) -> None:
    assert strip_header(line) == body


def test_add_is_streaming_and_ids_are_stable_across_generalisation() -> None:
    miner = LogTemplateMiner()
    tid1, t1 = miner.add("Connected to db as alice in 10 ms")
    tid2, t2 = miner.add("Connected to db as bob in 12 ms")
    assert tid1 == tid2 and tid1.startswith("T")
    assert t1 == "Connected to db as alice in <DUR>"
    assert t2 == "Connected to db as <*> in <DUR>"
    assert miner.template(tid1) == t2
    assert miner.templates == {tid1: t2}


def test_ids_are_deterministic_across_miners() -> None:
    lines = ["job started", "step 1 of 3 done", "step 2 of 3 done", "job finished in 5s"]
    assert LogTemplateMiner().mine(lines) == LogTemplateMiner().mine(lines)


def test_mine_gives_final_template_to_every_line() -> None:
    lines = [
        "Connected to db as alice",
        "Cache miss for key users",
        "Connected to db as bob",
    ]
    result = LogTemplateMiner().mine(lines)
    assert result[0] == result[2]
    assert result[0][1] == "Connected to db as <*>"
    assert result[1][1] == "Cache miss for key users"
    assert result[0][0] != result[1][0]


def test_agreeing_placeholders_do_not_make_lines_alike() -> None:
    # Alike in 5 of 6 tokens, but 4 of those are variables: the one word left differs.
    lines = ["copy 1 2 3 4 done", "copy 5 6 7 8 failed", "copy 9 10 11 12 done"]
    result = LogTemplateMiner().mine(lines)
    assert result[0] == result[2] != result[1]
    assert result[0][1] == "copy <NUM> <NUM> <NUM> <NUM> done"
    # Punctuation around a placeholder is still a placeholder: 2 of 3 alike, not 5 of 6.
    lines = ["peer <IP>, state <NUM>: up", "peer <IP>, state <NUM>: down"]
    first, second = LogTemplateMiner(strip_headers=False).mine(lines)
    assert first != second
    # Lines that differ only in a variable still merge.
    lines = ["Session 7 initialized by client Agent", "Session 8 initialized by client Agent"]
    first, second = LogTemplateMiner().mine(lines)
    assert first == second


def test_sizes_restated_and_host_ports_keep_token_counts_equal() -> None:
    lines = [
        "www.example.com:443 close, 1188 bytes (1.16 KB) sent, 0 bytes received, lifetime 04:00",
        "10.1.2.3:80 close, 466 bytes sent, 125682 bytes (122 KB) received, lifetime <1 sec",
    ]
    first, second = LogTemplateMiner().mine(lines)
    assert first == second
    assert first[1] == "<IP> close, <NUM> bytes sent, <NUM> bytes received, lifetime <*>"


def _args(**kw: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    logs_cli.add_parser(parser.add_subparsers(dest="command"))
    argv = ["logs", "mine"]
    if kw.get("file"):
        argv.append(str(kw["file"]))
    return parser.parse_args(argv)


LOG = (
    "2024-01-01 10:00:00 INFO logged in as user alice\n"
    "2024-01-01 10:00:01 INFO logged in as user bob\n"
    "boom\n"
)


def test_cli_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.log"
    path.write_text(LOG)
    args = _args(file=path)
    assert args.func(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert rows[0]["template"] == "logged in as user <*>"
    assert rows[0]["template_id"] == rows[1]["template_id"] != rows[2]["template_id"]


def test_cli_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args(file="/nonexistent/x.log")
    assert args.func(args) == 1
    assert "nonexistent" in capsys.readouterr().err


def test_cli_mine_function() -> None:
    out = io.StringIO()
    assert logs_cli.mine(io.StringIO(LOG), out) == 0
    assert len(out.getvalue().splitlines()) == 3


def test_cli_subprocess_reads_stdin() -> None:
    code = (
        "import argparse, sys\n"
        "from sentinel.cli.logs import add_parser\n"
        "p = argparse.ArgumentParser(); add_parser(p.add_subparsers(dest='command'))\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "logs", "mine"],
        input=LOG,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert rows[2]["template"] == "boom"


def test_a_message_whose_first_token_is_an_identifier_joins_its_template() -> None:
    # Drain routes on the first tokens: without looking across branches every job name here
    # would found its own template (the largest Mac error of Loghub).
    jobs = ["com.apple.icloud.fmfd.heartbeat", "com.apple.CacheDelete.daily", "com.apple.cts.a"]
    lines = [
        f"{job}: scheduler_evaluate_activity told me to run this job; however, but the start "
        f"time isn't for {n} seconds.  Ignoring."
        for n, job in enumerate(jobs * 2, start=4000)
    ]
    ids = {tid for tid, _ in LogTemplateMiner(strip_headers=False).mine(lines)}
    assert len(ids) == 1


def test_messages_that_differ_in_a_leading_word_stay_apart() -> None:
    lines = [
        "After Scheduling: PendingReds:1 ScheduledMaps:9 ScheduledReds:0 AssignedMaps:1",
        "Before Scheduling: PendingReds:1 ScheduledMaps:10 ScheduledReds:0 AssignedMaps:0",
        "After Scheduling: PendingReds:1 ScheduledMaps:8 ScheduledReds:0 AssignedMaps:2",
    ]
    ids = [tid for tid, _ in LogTemplateMiner(strip_headers=False).mine(lines)]
    assert ids[0] == ids[2] != ids[1]


def test_token_masking_equals_drain3s_masker_on_the_loghub_lines() -> None:
    # The miner masks token by token with a cache; it must give what drain3's LogMasker gives
    # applying every mask to the whole line in turn (runs of whitespace aside).
    from drain3.masking import LogMasker

    from processors.logs.templates import _TokenMasker, masking_instructions, strip_header
    from tests.support.paths import DATA

    reference = LogMasker(masking_instructions(), "<", ">")
    ours = _TokenMasker()
    for path in sorted((DATA / "loghub").glob("*/*_2k.log")):
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            for line in (raw, strip_header(raw)):
                assert ours.mask(line) == " ".join(reference.mask(line).split()), line
