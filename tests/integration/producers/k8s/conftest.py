"""Fixtures of the Kubernetes producer tests: the fake API server they watch and stream from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.kube_api import FakeKubeApi


@pytest.fixture
def fake() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(bookmark_interval=0.1) as server:
        yield server
