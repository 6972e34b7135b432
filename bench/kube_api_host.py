"""The fake Kubernetes API (tests/fakes/kube_api.py: the real list/watch/log wire protocol) in a
process of its own, for bench/producer_throughput.py: in the benchmark's process its serving
would share the GIL with the log streamer being measured, as a real API server does not.

    python bench/kube_api_host.py KUBECONFIG LINES BASE_NS

Serves one running pod `ci/bench` whose container `main` has logged LINES lines (`line(i)`,
stamped BASE_NS + i µs), writes a kubeconfig pointing at it, prints "ready" and serves until
its standard input closes.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.kube_api import FakeKubeApi, make_pod  # noqa: E402

LABELS = {"sentinel.io/run-id": "bench-run"}


def line(index: int) -> str:
    return f"INFO step {index} of the e2e suite took {index % 997} ms on runner-{index % 24} [ok]"


def main() -> None:
    kubeconfig, count, base = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with FakeKubeApi(bookmark_interval=0.1) as fake:
        fake.write_kubeconfig(kubeconfig)
        fake.add("pods", make_pod("ci", "bench", LABELS))
        for index in range(count):
            fake.append_log("ci", "bench", "main", line(index).encode(), ts_ns=base + index * 1000)
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
