"""Supervision of `sentinel up`'s children: a dead child is restarted after a capped, growing
delay, reported until it is back, and a child that cannot be restarted stops the stack."""

from __future__ import annotations

from prometheus_client import REGISTRY

from sentinel.supervisor import Child, RestartSchedule, Supervisor


def test_the_delay_doubles_up_to_its_cap_and_resets_after_a_stable_run() -> None:
    schedule = RestartSchedule(initial_s=1, max_s=8, stable_s=60)
    schedule.started(0, restart=False)
    delays = []
    now = 1.0
    for _ in range(6):  # a crash loop: dies right after each start
        delays.append(schedule.exited(now, "worker was killed by SIGKILL"))
        now += delays[-1]
        schedule.started(now)
    assert delays == [1, 2, 4, 8, 8, 8]
    assert schedule.restarts == 6
    # It ran for a minute: the next death is a new failure, not part of the loop.
    assert schedule.exited(now + 60, "worker exited with code 1") == 1


def test_the_problem_says_why_and_when_while_down() -> None:
    schedule = RestartSchedule(initial_s=2)
    assert schedule.problem(0) is None
    schedule.exited(10, "worker was killed by SIGKILL")
    assert schedule.problem(10.5) == "worker was killed by SIGKILL; restart 1 in 1.5 s"
    assert not schedule.due(11) and schedule.due(12)


class FakeChild:
    def __init__(self, fail_starts: int = 0) -> None:
        self.running = True
        self.starts = 0
        self.fail_starts = fail_starts
        self.serving = True  # what its own ready check says

    def ready(self) -> bool:
        return self.serving

    def alive(self) -> bool:
        return self.running

    def restart(self) -> None:
        self.starts += 1
        if self.starts <= self.fail_starts:
            raise RuntimeError("port in use")
        self.running = True


def sample(name: str, child: str) -> float:
    return REGISTRY.get_sample_value(name, {"child": child}) or 0.0


def test_a_dead_child_is_restarted_after_its_delay_and_reported_meanwhile() -> None:
    now = [0.0]
    worker, sink = FakeChild(), FakeChild()
    fatal: list[str] = []
    supervisor = Supervisor(
        [
            Child(
                "unit-worker",
                worker.alive,
                worker.restart,
                lambda: "was killed by SIGKILL",
                ready=worker.ready,
            ),
            Child("unit-sink", sink.alive, sink.restart, lambda: "stopped"),
        ],
        fatal.append,
        clock=lambda: now[0],
    )
    restarts_before = sample("sentinel_child_restarts_total", "unit-worker")
    supervisor.check_once()
    assert supervisor.problems() == {}
    worker.running = False
    now[0] = 100.0
    supervisor.check_once()
    assert supervisor.problems() == {
        "unit-worker": "unit-worker was killed by SIGKILL; restart 1 in 1.0 s"
    }
    assert sample("sentinel_child_up", "unit-worker") == 0
    now[0] = 100.5
    supervisor.check_once()
    assert worker.starts == 0  # not yet: backoff
    now[0] = 101.0
    worker.serving = False  # started, not consuming yet: still not ready
    supervisor.check_once()
    assert worker.starts == 1 and worker.running
    assert supervisor.problems() == {
        "unit-worker": "unit-worker was killed by SIGKILL; restarted, not ready yet"
    }
    assert sample("sentinel_child_up", "unit-worker") == 0
    worker.serving = True
    supervisor.check_once()
    assert supervisor.problems() == {}
    assert sample("sentinel_child_up", "unit-worker") == 1
    assert sample("sentinel_child_restarts_total", "unit-worker") == restarts_before + 1
    assert supervisor.details()["unit-worker"] == {"restarts": 1, "running": True}
    assert sink.starts == 0 and fatal == []


def test_a_child_that_fails_to_start_is_tried_again_later() -> None:
    now = [0.0]
    broker = FakeChild(fail_starts=1)
    supervisor = Supervisor(
        [Child("unit-broker", broker.alive, broker.restart, lambda: "exited with code 1")],
        lambda why: None,
        clock=lambda: now[0],
    )
    broker.running = False
    now[0] = 100.0
    supervisor.check_once()
    now[0] = 101.0
    supervisor.check_once()  # the start raises: next try after a longer delay
    assert (
        broker.starts == 1
        and "could not start: port in use" in supervisor.problems()["unit-broker"]
    )
    now[0] = 102.0
    supervisor.check_once()
    assert broker.starts == 1
    now[0] = 103.0
    supervisor.check_once()
    assert broker.starts == 2 and supervisor.problems() == {}


def test_a_child_that_cannot_be_restarted_stops_the_stack() -> None:
    broker = FakeChild()
    fatal: list[str] = []
    supervisor = Supervisor(
        [
            Child(
                "unit-tansu",
                broker.alive,
                broker.restart,
                lambda: "was killed by SIGKILL",
                restartable=False,
            )
        ],
        fatal.append,
    )
    broker.running = False
    supervisor.check_once()
    assert fatal == ["unit-tansu was killed by SIGKILL"]
    assert broker.starts == 0
    assert supervisor.problems() == {"stack": "unit-tansu was killed by SIGKILL"}
