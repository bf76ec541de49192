"""The recipe's [deploy] section: the API key's source, the gateway (smg) in front of the
replicas, and the Kubernetes rendering. One home for every default of `glm51 router` and
`glm51 deploy k8s`."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from glm51.recipe.base import Strict

Port = Annotated[int, Field(ge=1, le=65535)]
# smg 1.13.0's --policy choices (smg launch --help).
Policy = Literal[
    "random",
    "round_robin",
    "cache_aware",
    "power_of_two",
    "least_load",
    "consistent_hashing",
    "prefix_hash",
]
_K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class RouterRecipe(Strict):
    """`glm51 router`: smg in front of the replicas."""

    host: str = "0.0.0.0"
    port: Port = 8000
    policy: Policy = "cache_aware"
    health_failure_threshold: int = Field(3, ge=1, description="failed checks before unhealthy")
    health_success_threshold: int = Field(2, ge=1, description="passed checks before healthy")
    health_check_interval_s: int = Field(10, ge=1)
    health_check_timeout_s: int = Field(5, ge=1)
    retry_max_retries: int = Field(3, ge=1, description="attempts per request (1: no retry)")
    prometheus_port: Port = Field(29000, description="smg's Prometheus /metrics port")
    worker_urls: tuple[str, ...] = Field(
        (), description="the replicas' base URLs (`glm51 router` takes --worker-url instead)"
    )

    @model_validator(mode="after")
    def _two_ports(self) -> RouterRecipe:
        if self.port == self.prometheus_port:
            raise ValueError(f"port and prometheus_port are both {self.port}: smg needs two")
        return self


class KubernetesRecipe(Strict):
    """`glm51 deploy k8s`: what the manifests need beyond the profile and the image."""

    namespace: str = Field("glm51", pattern=_K8S_NAME)
    name: str = Field("glm51", pattern=_K8S_NAME, description="prefix of every object's name")
    image: str = Field("cu130", description="a key of [images]: the image the replicas run")
    model_claim: str = Field(
        "glm51-model", pattern=_K8S_NAME, description="PersistentVolumeClaim with the checkpoint"
    )
    model_path: str = Field("/models/GLM-5.1-NVFP4", description="where the claim is mounted")
    jit_cache_claim: str = Field(
        "glm51-jit-cache", pattern=_K8S_NAME, description="PersistentVolumeClaim for JIT caches"
    )
    jit_cache_path: str = Field("/cache/jit", description="the image's JIT cache volume")
    shm_size: str = Field("64Gi", pattern=r"^\d+(Ki|Mi|Gi|Ti)$", description="/dev/shm size")
    api_key_secret: str = Field(
        "glm51-api-key", pattern=_K8S_NAME, description="Secret whose key `api-key` is the key"
    )
    router_image: str | None = Field(
        None,
        description="the gateway's image: one with `pip install 'glm51[router]'` (smg 1.13.0); "
        "unset: `glm51 deploy k8s --router-image` must name it",
    )
    node_env: dict[str, str] = Field(
        default_factory=lambda: {"NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0"},
        description="values of the variables a multi-node profile's node_env names, in the pods",
    )
    dist_init_port: Port = Field(20000, description="port on the leader pod where ranks meet")
    readiness_initial_delay_s: int = Field(600, ge=0, description="loading 744B takes minutes")


class DeployRecipe(Strict):
    api_key_env: str | None = Field(
        "GLM51_API_KEY", description="environment variable holding the API key (unset: none)"
    )
    require_api_key: bool = Field(
        False, description="true: `glm51 serve` refuses a non-loopback bind without a key"
    )
    profile: str | None = Field(
        None,
        description="the profile each replica serves (a key of "
        "[profiles]; default: serve.default_profile)",
    )
    replicas: int = Field(2, ge=1, description="replicas behind the gateway")
    router: RouterRecipe = Field(default_factory=RouterRecipe)
    kubernetes: KubernetesRecipe = Field(default_factory=KubernetesRecipe)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        return name
