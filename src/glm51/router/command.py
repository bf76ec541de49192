"""The smg command for a set of replicas (pure): what `glm51 router` runs and its dry run shows."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from glm51.recipe.deploy import RouterRecipe


def smg_args(
    router: RouterRecipe,
    worker_urls: Sequence[str],
    *,
    host: str,
    port: int,
    prometheus_port: int,
) -> list[str]:
    """`smg launch`'s arguments (without the key): the replicas, the policy, health checks
    with their thresholds, retries, the ports."""
    return [
        "--host",
        host,
        "--port",
        str(port),
        "--worker-urls",
        *worker_urls,
        "--policy",
        router.policy,
        "--health-failure-threshold",
        str(router.health_failure_threshold),
        "--health-success-threshold",
        str(router.health_success_threshold),
        "--health-check-interval-secs",
        str(router.health_check_interval_s),
        "--health-check-timeout-secs",
        str(router.health_check_timeout_s),
        "--retry-max-retries",
        str(router.retry_max_retries),
        "--prometheus-port",
        str(prometheus_port),
    ]


def keyed_argv(args: Sequence[str], python: str = sys.executable) -> list[str]:
    """smg run by glm51.router.keyed, which reads the key from its stdin (never argv)."""
    return [python, "-m", "glm51.router.keyed", *args]
