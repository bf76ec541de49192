"""Kubernetes manifests for the recipe's deployment (pure: recipe + image ref -> objects).

Per replica, a Deployment when the profile fits one node, a LeaderWorkerSet (one leader and
nodes-1 workers per group) when it spans several; the gateway (smg) as a Deployment and a
Service that finds the replicas' serving pods by label, with the RBAC to list pods. The API key
is a Secret the operator creates: the manifests name it, never hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from glm51.recipe.deploy import KubernetesRecipe
from glm51.recipe.schema import Recipe
from glm51.recipe.serving import Profile
from glm51.router.command import smg_args

Manifest = dict[str, Any]
KEY_DIR = "/var/run/secrets/glm51"
KEY_FILE = f"{KEY_DIR}/api-key"
SERVES = "glm51.io/serves"  # the label smg selects: pods that answer the OpenAI API


@dataclass(frozen=True, kw_only=True)
class Target:
    """What the rendering needs beyond the recipe (each from the request, checked there)."""

    profile_name: str
    image: str  # the serving image by digest
    router_image: str
    replicas: int


def _meta(k: KubernetesRecipe, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": k.namespace, "labels": _labels(k, component)}


def _labels(k: KubernetesRecipe, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "glm51",
        "app.kubernetes.io/instance": k.name,
        "app.kubernetes.io/component": component,
    }


def _serve_args(recipe: Recipe, name: str, profile: Profile, node: str | None) -> list[str]:
    k = recipe.deploy.kubernetes
    args = ["glm51", "serve", "--profile", name, "--model", k.model_path]
    args += ["--api-key-file", KEY_FILE, "--host", "0.0.0.0"]
    args += ["--port", str(profile.server.port)]
    if node is not None:  # LeaderWorkerSet sets these variables in every pod of a group
        args += ["--nnodes", str(profile.hardware.nodes), "--node-rank", node]
        args += ["--dist-init-addr", f"$(LWS_LEADER_ADDRESS):{k.dist_init_port}"]
    return args


def _probe(port: int, initial_delay_s: int, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": port},
        "initialDelaySeconds": initial_delay_s,
        "periodSeconds": period_s,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _pod(
    recipe: Recipe, target: Target, profile: Profile, *, node: str | None, serves: bool
) -> dict[str, Any]:
    k = recipe.deploy.kubernetes
    port = profile.server.port
    env = [{"name": n, "value": v} for n, v in sorted(k.node_env.items())]
    container: dict[str, Any] = {
        "name": "glm51",
        "image": target.image,
        "args": _serve_args(recipe, target.profile_name, profile, node),
        "env": env if profile.hardware.nodes > 1 else [],
        "resources": {"limits": {"nvidia.com/gpu": profile.hardware.gpu_count}},
        "volumeMounts": [
            {"name": "model", "mountPath": k.model_path, "readOnly": True},
            {"name": "jit-cache", "mountPath": k.jit_cache_path},
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "api-key", "mountPath": KEY_DIR, "readOnly": True},
        ],
    }
    if serves:  # the pod that answers HTTP: probed, and found by the gateway
        container["ports"] = [{"name": "http", "containerPort": port}]
        container["readinessProbe"] = _probe(port, k.readiness_initial_delay_s, 10, 3)
        # Liveness waits for readiness's worth of loading, then tolerates a slow minute.
        container["livenessProbe"] = _probe(port, k.readiness_initial_delay_s + 600, 30, 6)
    labels = _labels(k, "replica") | ({SERVES: "openai"} if serves else {})
    return {
        "metadata": {"labels": labels},
        "spec": {
            # The image runs as glm51 (uid 1000): the Secret's file is group-readable by it.
            "securityContext": {"fsGroup": 1000},
            "containers": [container],
            "volumes": [
                {
                    "name": "model",
                    "persistentVolumeClaim": {"claimName": k.model_claim, "readOnly": True},
                },
                {"name": "jit-cache", "persistentVolumeClaim": {"claimName": k.jit_cache_claim}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": k.shm_size}},
                {
                    "name": "api-key",
                    "secret": {
                        "secretName": k.api_key_secret,
                        "items": [{"key": "api-key", "path": "api-key"}],
                        "defaultMode": 0o440,
                    },
                },
            ],
        },
    }


def replicas(recipe: Recipe, target: Target) -> Manifest:
    """The serving replicas: a Deployment (one node each) or a LeaderWorkerSet (several)."""
    k = recipe.deploy.kubernetes
    profile = recipe.profiles[target.profile_name]
    name = f"{k.name}-replica"
    if profile.hardware.nodes == 1:
        pod = _pod(recipe, target, profile, node=None, serves=True)
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(k, name, "replica"),
            "spec": {
                "replicas": target.replicas,
                "selector": {"matchLabels": _labels(k, "replica")},
                "template": pod,
            },
        }
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": _meta(k, name, "replica"),
        "spec": {
            "replicas": target.replicas,
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": profile.hardware.nodes,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": _pod(recipe, target, profile, node="0", serves=True),
                "workerTemplate": _pod(
                    recipe, target, profile, node="$(LWS_WORKER_INDEX)", serves=False
                ),
            },
        },
    }


def gateway(recipe: Recipe, target: Target) -> list[Manifest]:
    """smg: ServiceAccount, Role + RoleBinding to list pods, Deployment, Service."""
    k, r = recipe.deploy.kubernetes, recipe.deploy.router
    profile = recipe.profiles[target.profile_name]
    name = f"{k.name}-gateway"
    meta = _meta(k, name, "gateway")
    selector = [f"{SERVES}=openai", f"app.kubernetes.io/instance={k.name}"]
    args = smg_args(r, [], host="0.0.0.0", port=r.port, prometheus_port=r.prometheus_port)
    at = args.index("--worker-urls")
    args[at : at + 1] = [
        "--service-discovery",
        "--selector",
        *selector,
        "--service-discovery-port",
        str(profile.server.port),
        "--service-discovery-namespace",
        k.namespace,
    ]
    container = {
        "name": "smg",
        "image": target.router_image,
        # The key from the mounted Secret, handed to smg in memory (never in argv).
        "command": ["python", "-m", "glm51.router.keyed", "--api-key-file", KEY_FILE],
        "args": args,
        "ports": [
            {"name": "http", "containerPort": r.port},
            {"name": "metrics", "containerPort": r.prometheus_port},
        ],
        "readinessProbe": _probe(r.port, 5, 10, 3),
        "livenessProbe": _probe(r.port, 15, 20, 3),
        "volumeMounts": [{"name": "api-key", "mountPath": KEY_DIR, "readOnly": True}],
    }
    pod_labels = _labels(k, "gateway")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": k.namespace}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": pod_labels},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [container],
                        "volumes": [
                            {
                                "name": "api-key",
                                "secret": {
                                    "secretName": k.api_key_secret,
                                    "items": [{"key": "api-key", "path": "api-key"}],
                                    "defaultMode": 0o444,  # whatever user the image runs as
                                },
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": pod_labels,
                "ports": [
                    {"name": "http", "port": r.port, "targetPort": "http"},
                    {"name": "metrics", "port": r.prometheus_port, "targetPort": "metrics"},
                ],
            },
        },
    ]


def render(recipe: Recipe, target: Target) -> dict[str, Manifest | list[Manifest]]:
    """File name -> its objects, in the order `kubectl apply -f DIR` should meet them."""
    return {
        "10-replicas.yaml": replicas(recipe, target),
        "20-gateway.yaml": gateway(recipe, target),
    }
