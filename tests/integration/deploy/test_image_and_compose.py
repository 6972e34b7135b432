"""The Dockerfile (hadolint) and docker-compose.yml (the real Compose v2 binary), offline."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.support.deploy_tools import compose_binary, hadolint, run
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

DOCKERFILE = REPO / "deploy" / "Dockerfile"
SENTINEL_SERVICES = {"init", "api", "worker", "sink", "alerts", "k8s-watch", "log-stream"}


def test_hadolint_passes_the_dockerfile() -> None:
    result = run(hadolint(), DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_checking(tmp_path: Path) -> None:
    """Negative control: a classic mistake (apt-get without --no-install-recommends, sudo)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\nRUN sudo ls\n")
    result = run(hadolint(), bad)
    assert result.returncode != 0 and "DL3004" in result.stdout


def test_the_image_is_multi_stage_non_root_and_without_the_embedded_engine() -> None:
    text = DOCKERFILE.read_text()
    stages = list(re.finditer(r"^FROM .*$", text, re.MULTILINE))
    assert len(stages) == 2 and stages[0].group(0).endswith("AS build")
    final = text[stages[1].end() :]
    assert "pip install" not in final and "apt-get" not in final  # nothing built there
    assert "COPY --from=build /opt/sentinel /opt/sentinel" in final
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", final, re.MULTILINE)
    assert "ARG UID=10001" in final
    healthcheck = re.search(r"^HEALTHCHECK .*?(?=^\S)", final, re.MULTILINE | re.DOTALL)
    assert healthcheck and "python" in healthcheck.group(0)
    assert not re.search(r"\b(curl|wget)\b", healthcheck.group(0))
    assert "/health" in healthcheck.group(0)
    # The server install: the package without the [embedded] extra, checked in the build.
    assert "pip install --no-binary=drain3,automation-run-sentinel ." in text
    assert "find_spec('chdb') is None" in text


def test_the_image_copies_every_package_the_project_installs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \1$", DOCKERFILE.read_text(), re.MULTILINE))
    assert copied == packages
    ignored = (REPO / ".dockerignore").read_text()
    assert all(f"!{package}/" in ignored for package in packages)


def compose_config(*args: str) -> dict[str, Any]:
    result = run(compose_binary(), "--profile", "kubernetes", *args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_compose_file_is_valid() -> None:
    result = run(compose_binary(), "-f", REPO / "docker-compose.yml", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_the_compose_binary_refuses_a_broken_file(tmp_path: Path) -> None:
    """Negative control: the real binary (not its Python wrapper, which always exits 0)."""
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  a:\n    image: x\n    depends_on: [missing]\n")
    result = run(compose_binary(), "-f", broken, "config", "-q")
    assert result.returncode != 0 and "missing" in result.stderr


def test_compose_runs_each_component_as_its_own_service_after_its_dependencies() -> None:
    services = compose_config()["services"]
    assert SENTINEL_SERVICES | {"kafka", "clickhouse", "grafana"} == set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    for name in ("kafka", "clickhouse", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    init = services["init"]
    assert {k: v["condition"] for k, v in init["depends_on"].items()} == {
        "kafka": "service_healthy",
        "clickhouse": "service_healthy",
    }
    for name in SENTINEL_SERVICES - {"init"}:
        service = services[name]
        assert service["command"] == [name], name
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert "8081/health" in " ".join(service["healthcheck"]["test"]), name
        env = service["environment"]
        assert env["SENTINEL_CONFIG"] == "/etc/sentinel/config.yaml", name
        assert env["SENTINEL_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092", name
        mounts = {v["target"]: v["source"] for v in service["volumes"]}
        assert Path(mounts["/etc/sentinel/config.yaml"]) == REPO / "deploy/compose/sentinel.yaml"
        assert service["read_only"] is True and service["user"] == "10001:10001", name


def test_grafana_gets_the_plugin_the_data_source_and_the_dashboards() -> None:
    grafana = compose_config()["services"]["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    provisioning = mounts["/etc/grafana/provisioning"]
    assert (provisioning / "datasources" / "clickhouse.yaml").is_file()
    assert len(list(mounts["/var/lib/grafana/dashboards/sentinel"].glob("*.json"))) == 6
    datasource = (provisioning / "datasources" / "clickhouse.yaml").read_text()
    for variable in re.findall(r"\$\{(\w+)\}", datasource):
        assert variable in grafana["environment"], variable
