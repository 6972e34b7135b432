"""The Helm chart and the plain manifests, checked offline with the real tools.

helm lints and renders the chart (default and example values); kubeconform validates what it
renders, and the plain manifests in deploy/kubernetes/, against the Kubernetes schemas of the
oldest and newest supported versions (strict: an unknown field is an error). The rendered
objects are then read like a reviewer would: RBAC exactly as listed, security context, probes,
one Deployment per component entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy_tools import (
    CHART,
    EXAMPLE_VALUES,
    KUBE_VERSIONS,
    go_tool,
    run,
    schemas,
)
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

MANIFESTS = REPO / "deploy" / "kubernetes"
# What k8s-watch and log-stream may do, and nothing more: (API group, resource, verb).
EXPECTED_RULES = {
    *((group, resource, verb) for group, resource in [
        ("", "pods"), ("", "services"), ("", "events"), ("batch", "jobs"),
        ("events.k8s.io", "events"),
    ] for verb in ("get", "list", "watch")),
    ("", "pods/log", "get"),
    *(("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")),
}  # fmt: skip
COMPONENTS = {"api", "worker", "sink", "alerts", "k8s-watch", "log-stream"}


def helm(*args: str | Path) -> str:
    result = run(go_tool("helm"), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(*values: Path, version: str = KUBE_VERSIONS[-1], **sets: str) -> list[dict[str, Any]]:
    args: list[str | Path] = ["template", "sentinel", CHART, "-n", "sentinel"]
    args += ["--kube-version", version]
    for path in values:
        args += ["-f", path]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    return [doc for doc in yaml.safe_load_all(helm(*args)) if doc]


def kubeconform(path: Path, version: str) -> str:
    result = run(
        go_tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", version,
        "-schema-location", schemas(version), path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def example_docs() -> list[dict[str, Any]]:
    return render(EXAMPLE_VALUES)


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("values", [None, EXAMPLE_VALUES], ids=["default", "example"])
def test_helm_lint_strict_passes(values: Path | None) -> None:
    args: list[str | Path] = ["lint", "--strict", CHART]
    if values is not None:
        args += ["-f", values]
    assert "0 chart(s) failed" in helm(*args)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [None, EXAMPLE_VALUES], ids=["default", "example"])
def test_rendered_chart_is_valid_for_the_oldest_and_newest_kubernetes(
    tmp_path: Path, version: str, values: Path | None
) -> None:
    docs = render(*([values] if values else []), version=version)
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    summary = kubeconform(path, version)
    assert f"{len(docs)} resources found" in summary and "Invalid: 0, Errors: 0" in summary


def test_kubeconform_refuses_an_unknown_field(tmp_path: Path, default_docs: Any) -> None:
    """The negative control: the schemas are really applied, strictly."""
    deployment = of_kind(default_docs, "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(deployment))
    result = run(
        go_tool("kubeconform"), "-strict", "-kubernetes-version", KUBE_VERSIONS[0],
        "-schema-location", schemas(KUBE_VERSIONS[0]), path,
    )  # fmt: skip
    assert result.returncode == 1 and "livenessProbes" in result.stdout


def test_plain_manifests_match_the_chart_and_are_valid() -> None:
    result = run(REPO / ".venv" / "bin" / "python", "tools/render_manifests.py", "--check")
    assert result.returncode == 0, result.stderr
    for version in KUBE_VERSIONS:
        for path in sorted(MANIFESTS.glob("*.yaml")):
            assert "Invalid: 0, Errors: 0" in kubeconform(path, version)


@pytest.mark.parametrize("docs_fixture", ["default_docs", "example_docs"])
def test_rbac_is_exactly_the_listed_rules_for_the_kubernetes_readers_only(
    docs_fixture: str, request: pytest.FixtureRequest
) -> None:
    docs = request.getfixturevalue(docs_fixture)
    roles = {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc
        for doc in docs
        if doc["kind"] in ("Role", "ClusterRole")
    }
    granted: set[tuple[str, str, str]] = set()
    subjects: set[str] = set()
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], namespace, ref["name"])]
        subjects |= {subject["name"] for subject in binding["subjects"]}
        granted |= {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
    assert granted == EXPECTED_RULES
    assert subjects == {"sentinel-automation-run-sentinel-kube-reader"}
    for doc in of_kind(docs, "Deployment"):
        spec = doc["spec"]["template"]["spec"]
        reads_kubernetes = component(doc) in ("k8s-watch", "log-stream")
        assert (spec["serviceAccountName"] in subjects) == reads_kubernetes
        assert spec["automountServiceAccountToken"] is reads_kubernetes


def test_namespaced_rbac_puts_the_read_rules_in_each_watched_namespace(example_docs: Any) -> None:
    roles = of_kind(example_docs, "Role")
    assert of_kind(example_docs, "ClusterRole") == []
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["builds", "ci", "sentinel"]


def test_every_pod_runs_restricted(default_docs: Any, example_docs: Any) -> None:
    for name, spec in [*pod_specs(default_docs), *pod_specs(example_docs)]:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["requests"], name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/var/lib/sentinel", "/etc/sentinel"} <= mounts, name


def test_one_deployment_per_component_with_probes_on_the_ops_port(default_docs: Any) -> None:
    deployments = {component(doc): doc for doc in of_kind(default_docs, "Deployment")}
    assert set(deployments) == COMPONENTS
    for name, doc in deployments.items():
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] == name
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "ops"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "ops"}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SENTINEL_CONFIG"] == "/etc/sentinel/config.yaml"
        assert ("SENTINEL_LEADER_ELECTION__ENABLED" in env) == (name in ("k8s-watch", "log-stream"))
    assert deployments["api"]["spec"]["replicas"] >= 2
    worker = deployments["worker"]["spec"]
    assert worker["strategy"]["rollingUpdate"] == {"maxUnavailable": "50%", "maxSurge": 0}
    (service,) = of_kind(default_docs, "Service")
    assert component(service) == "api" and service["spec"]["ports"][0]["targetPort"] == "http"


def test_network_policies_let_in_only_webhook_and_api_traffic(
    default_docs: Any, example_docs: Any
) -> None:
    policies = {component(doc): doc["spec"] for doc in of_kind(default_docs, "NetworkPolicy")}
    assert set(policies) == COMPONENTS
    for name, spec in policies.items():
        assert spec["policyTypes"] == ["Ingress"]
        expected = [{"ports": [{"port": "http", "protocol": "TCP"}]}] if name == "api" else []
        assert spec["ingress"] == expected, name
    example = {component(doc): doc["spec"] for doc in of_kind(example_docs, "NetworkPolicy")}
    api_ports = [rule["ports"] for rule in example["api"]["ingress"]]
    assert api_ports == [
        [{"port": "http", "protocol": "TCP"}],
        [{"port": "ops", "protocol": "TCP"}],
    ]
    assert all(rule["from"] for rule in example["api"]["ingress"])


def test_opt_in_pdb_and_hpa_within_the_partition_count(
    default_docs: Any, example_docs: Any
) -> None:
    assert of_kind(default_docs, "PodDisruptionBudget") == []
    assert of_kind(default_docs, "HorizontalPodAutoscaler") == []
    assert {component(d) for d in of_kind(example_docs, "PodDisruptionBudget")} == COMPONENTS
    hpas = {component(d): d["spec"] for d in of_kind(example_docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"api", "worker", "sink"}
    assert hpas["worker"]["maxReplicas"] == 12  # = config.topics.partitions of the example
    scaled = {component(d) for d in of_kind(example_docs, "Deployment") if "replicas" in d["spec"]}
    assert scaled == {"alerts", "k8s-watch", "log-stream"}  # an HPA owns the others


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"components.worker.replicas": "7"}, "exceeds config.topics.partitions (6)"),
        ({"config.store.dsn": ""}, "config.store.dsn is required"),
        ({"config.kafka.bootstrap_servers": ""}, "config.kafka.bootstrap_servers is required"),
    ],
)
def test_impossible_values_fail_rendering_with_a_reason(sets: dict[str, str], message: str) -> None:
    args: list[str | Path] = ["template", "sentinel", CHART, "--kube-version", KUBE_VERSIONS[-1]]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    result = run(go_tool("helm"), *args)
    assert result.returncode != 0 and message in result.stderr


def test_a_new_component_is_one_values_entry(tmp_path: Path) -> None:
    """How the alert dispatcher (issue 13) is added: a block under components, nothing else."""
    values = tmp_path / "alerts.yaml"
    values.write_text(
        yaml.safe_dump(
            {"components": {"alerts": {"enabled": True, "args": ["alerts"], "replicas": 2,
             "scaleWithPartitions": True, "resources": {"requests": {"cpu": "100m"}}}}}
        )
    )  # fmt: skip
    docs = render(values)
    (alerts,) = [d for d in of_kind(docs, "Deployment") if component(d) == "alerts"]
    (container,) = alerts["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["alerts"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert alerts["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert "alerts" in {component(d) for d in of_kind(docs, "NetworkPolicy")}


def test_dashboards_ship_as_configmaps_for_the_grafana_sidecar(
    default_docs: Any, example_docs: Any
) -> None:
    def dashboards(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {
            name: json.loads(text)
            for doc in of_kind(docs, "ConfigMap")
            if doc["metadata"]["labels"].get("grafana_dashboard") == "1"
            for name, text in doc["data"].items()
        }

    assert dashboards(default_docs) == {}
    shipped = dashboards(example_docs)
    files = sorted(p.name for p in (REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert sorted(shipped) == files
    assert shipped["run-overview.json"]["uid"] == "sentinel-run-overview"
