"""Loghub 2k grouping accuracy reaches Drain's published figure on each dataset (one config)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.support.paths import REPO

_BENCH = REPO / "bench" / "loghub_accuracy.py"
_spec = importlib.util.spec_from_file_location("loghub_accuracy", _BENCH)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["loghub_accuracy"] = bench
_spec.loader.exec_module(bench)

ROOT = bench.DEFAULT_ROOT


@pytest.mark.parametrize("dataset", bench.DEFAULT_DATASETS)
def test_content_accuracy_reaches_published(dataset: str) -> None:
    sample = bench.load(ROOT, dataset)
    assert bench.accuracy(sample, "content") >= bench.PUBLISHED[dataset]


@pytest.mark.parametrize("dataset", bench.DEFAULT_DATASETS)
def test_raw_lines_with_generic_header_stripping_reach_published(dataset: str) -> None:
    sample = bench.load(ROOT, dataset)
    assert bench.accuracy(sample, "raw") >= bench.PUBLISHED[dataset]


def test_grouping_accuracy_definition() -> None:
    truth = ["A", "A", "B", "C", "C"]
    assert bench.grouping_accuracy(truth, [1, 1, 2, 3, 3]) == 1.0
    # B merged into A's group: A and B lines wrong, C right.
    assert bench.grouping_accuracy(truth, [1, 1, 1, 3, 3]) == pytest.approx(2 / 5)
    # C split in two: C lines wrong.
    assert bench.grouping_accuracy(truth, [1, 1, 2, 3, 4]) == pytest.approx(3 / 5)
    with pytest.raises(ValueError):
        bench.grouping_accuracy(truth, [1])
