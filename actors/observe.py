"""What ``ttr status`` and the alert actor see: AWS (queues, triggers, rejected input) and the
actors' health in the cluster, gathered into ``runtime.services.status.Status``.

Runs inside a Ray driver or actor (the actors' health is read by name); ``ttr status`` connects
first (``runtime.local.runtime_host.ray_connection``) and hands that in as ``connect``.
"""

from __future__ import annotations

import time
from typing import Callable, ContextManager

from runtime.domain.alerts import AlertConfig
from runtime.domain.config import Config
from runtime.services.status import ClusterView, Status, TenantStatus, assemble, fill_health, tenant_statuses


def aws_view(cfg: Config, now: float) -> dict[str, TenantStatus]:
    """Each tenant's queues and bucket, read with the runtime's own credentials."""
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.adapters.sqs import SqsQueue

    clients = AwsClients(cfg.region, cfg.aws_endpoint_url)
    return tenant_statuses(cfg, S3ObjectStore(clients, cfg.bucket), lambda name: SqsQueue(clients, name), now)


def cluster_view(tenants: dict[str, TenantStatus], namespace: str) -> ClusterView:
    """The actors' health in ``namespace`` (Ray is connected)."""
    from actors.proxies import (
        ALERT_ACTOR_NAME,
        ARCHIVE_ACTOR_NAME,
        FEEDBACK_ACTOR_NAME,
        MEETINGS_ACTOR_NAME,
        RECONCILER_ACTOR_NAME,
        RENDERER_ACTOR_NAME,
        customer_actor_name,
        health_by_name,
    )

    names = {"archive": ARCHIVE_ACTOR_NAME, "meetings": MEETINGS_ACTOR_NAME, "alerts": ALERT_ACTOR_NAME,
             "feedback": FEEDBACK_ACTOR_NAME, "reconciler": RECONCILER_ACTOR_NAME, "renderer": RENDERER_ACTOR_NAME}
    return fill_health(tenants, lambda code: health_by_name(customer_actor_name(code), namespace),
                       lambda role: health_by_name(names[role], namespace), namespace)


def gather(cfg: Config, alerts: AlertConfig, *, namespace: str = "ttr",
           connect: Callable[[], ContextManager[str]] | None = None) -> Status:
    """AWS first, then the cluster. ``connect()``: a context that yields "" once connected to
    Ray, or why it cannot be (then the runtime is not reachable); None: already connected."""
    tenants = aws_view(cfg, time.time())
    if connect is None:
        cluster = cluster_view(tenants, namespace)
    else:
        with connect() as error:
            cluster = ClusterView(False, error) if error else cluster_view(tenants, namespace)
    return assemble(tenants, cluster, alerts)
