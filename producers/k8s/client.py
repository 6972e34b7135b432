"""Connecting to the Kubernetes API with the official client: in-cluster or kubeconfig.

Shared by the watcher and the log streamer. Nothing connects at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runtime.config import K8sConfig, Settings

if TYPE_CHECKING:
    from producers.k8s.watch import Publisher

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


def use_in_cluster(config: K8sConfig) -> bool:
    """Explicit `k8s.in_cluster` wins; else in-cluster when running in a pod with no kubeconfig."""
    if config.in_cluster is not None:
        return config.in_cluster
    return config.kubeconfig is None and bool(os.environ.get(IN_CLUSTER_ENV))


def api_client(config: K8sConfig) -> Any:
    """A `kubernetes.client.ApiClient` for the configured cluster."""
    from kubernetes import client
    from kubernetes import config as kube_config

    configuration = client.Configuration()
    if use_in_cluster(config):
        kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    else:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(config.kubeconfig) if config.kubeconfig else None,
            context=config.context,
            client_configuration=configuration,
        )
    return client.ApiClient(configuration)


@contextmanager
def producer_session(
    settings: Settings, component: str, publisher: Publisher | None = None
) -> Iterator[tuple[Publisher, Any]]:
    """A publisher (Kafka unless one is given, e.g. `sentinel capture`'s null publisher) and an
    API client for a producer process, both flushed and closed on the way out."""
    from producers.publisher import KafkaPublisher
    from runtime.kafka_clients import producer_config

    if publisher is None:
        publisher = KafkaPublisher(producer_config(settings), component=component)
    api = api_client(settings.k8s)
    try:
        yield publisher, api
    finally:
        publisher.close()
        api.close()
