"""Validating rendered manifests without a cluster: core kinds against the Kubernetes JSON
schemas (kubernetes-validate, strict: unknown fields are errors), LeaderWorkerSet against its
published CRD schema (tests/data/k8s, see PROVENANCE.md), unknown fields refused as
`kubectl apply --validate=strict` would."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

K8S_VERSION = "1.37"
LWS_CRD = Path(__file__).resolve().parents[1] / "data" / "k8s"
LWS_CRD = LWS_CRD / "leaderworkerset.x-k8s.io_leaderworkersets.v0.10.0.json"


@cache
def lws_schema() -> dict[str, Any]:
    crd = json.loads(LWS_CRD.read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return v1["schema"]["openAPIV3Schema"]


def unknown_fields(obj: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Fields the schema does not declare (structural schemas prune them silently)."""
    found: list[str] = []
    if isinstance(obj, dict) and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return found
        for key, value in obj.items():
            sub = schema["properties"].get(key)
            if sub is None:
                found.append(f"{where}.{key}")
            else:
                found += unknown_fields(value, sub, f"{where}.{key}")
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            found += unknown_fields(item, schema["items"], f"{where}[{i}]")
    return found


def validate(obj: dict[str, Any]) -> None:
    """Raise for an object that is not valid for its kind (AssertionError naming the field)."""
    if obj["kind"] == "LeaderWorkerSet":
        schema = lws_schema()
        jsonschema.Draft7Validator(schema).validate(obj)
        unknown = unknown_fields(obj, schema)
        assert not unknown, f"LeaderWorkerSet: unknown fields {unknown}"
        # metadata is `type: object` in a CRD: the API server checks it as ObjectMeta.
        meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}
        kubernetes_validate.validate(meta, K8S_VERSION, strict=True)
        return
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
