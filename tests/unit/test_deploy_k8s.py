"""`glm51 deploy k8s`: manifests rendered from the recipe validate (core kinds against the
Kubernetes schemas, LeaderWorkerSet against its CRD), and follow the recipe and the image
record: the replica count, the nodes per replica and the image digest each show up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from glm51.cli import app
from glm51.deploy.k8s import SERVES
from tests.support.cli import error_text, exit_code
from tests.support.k8s import validate

REPO = Path(__file__).resolve().parents[2]
IMAGE_RECORD = REPO / "tests" / "data" / "records" / "image.json"
DIGEST = "sha256:" + "ab" * 32
TWO_NODE = "rtx-pro-6000-x4-2node"


def _recipe(tmp_path: Path, **replace: str) -> Path:
    text = (REPO / "release" / "glm51.toml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    folder = tmp_path / "recipe"
    folder.mkdir(exist_ok=True)
    if not (folder / "calibration").exists():
        shutil.copytree(REPO / "release" / "calibration", folder / "calibration")
    # A file per variant: the recipe loader caches by path.
    path = folder / f"glm51-{len(list(folder.glob('*.toml')))}.toml"
    path.write_text(text)
    return path


def _image_record(tmp_path: Path, digest: str = DIGEST, pushed: bool = True) -> Path:
    data = json.loads(IMAGE_RECORD.read_text())
    data.update(digest=digest, pushed=pushed, tags=["ghcr.io/lukealonso/glm51:0.4.0-cu130"])
    path = tmp_path / f"image-{digest[-4:]}-{pushed}.json"
    path.write_text(json.dumps(data))
    return path


def _deploy(tmp_path, *args, recipe=None, record=None, out="k8s"):
    argv = ["deploy", "k8s", "--out", str(tmp_path / out)]
    argv += ["--image-record", str(record or _image_record(tmp_path))]
    argv += ["--router-image", "ghcr.io/example/glm51-router:1.13.0", *args]
    if recipe is not None:
        argv += ["--recipe", str(recipe)]
    return CliRunner().invoke(app, argv)


def _objects(folder: Path) -> list[dict]:
    objs = []
    for path in sorted(folder.glob("*.yaml")):
        objs += [o for o in yaml.safe_load_all(path.read_text()) if o]
    return objs


def _kind(objs, kind, component="replica"):
    (obj,) = [
        o
        for o in objs
        if o["kind"] == kind and o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return obj


@pytest.mark.parametrize("profile", ["rtx-pro-6000-x8", TWO_NODE])
def test_every_rendered_object_validates(tmp_path, profile):
    result = _deploy(tmp_path, "--profile", profile)
    assert result.exit_code == 0, result.output
    objs = _objects(tmp_path / "k8s")
    kinds = sorted(o["kind"] for o in objs)
    replica = "LeaderWorkerSet" if profile == TWO_NODE else "Deployment"
    assert kinds == sorted(
        [replica, "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"]
    )
    for obj in objs:
        validate(obj)


def test_the_validators_refuse_what_a_cluster_would(tmp_path):
    _deploy(tmp_path, "--profile", TWO_NODE)
    objs = _objects(tmp_path / "k8s")
    lws = _kind(objs, "LeaderWorkerSet")
    lws["spec"]["leaderWorkerTemplate"]["size"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        validate(lws)
    lws["spec"]["leaderWorkerTemplate"]["size"] = 2
    lws["spec"]["leaderWorkerTemplate"]["sise"] = 2
    with pytest.raises(AssertionError, match="sise"):
        validate(lws)
    gateway = _kind(objs, "Deployment", "gateway")
    gateway["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(gateway)


def test_replicas_nodes_and_digest_follow_the_recipe_and_the_image_record(tmp_path):
    base = _objects_for(tmp_path, "base", _recipe(tmp_path), _image_record(tmp_path))
    deployment = _kind(base, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]["containers"][0]
    assert pod["image"] == f"ghcr.io/lukealonso/glm51@{DIGEST}"
    assert pod["resources"]["limits"]["nvidia.com/gpu"] == 8

    more = _recipe(tmp_path, **{"replicas = 2": "replicas = 5"})
    assert _kind(_objects_for(tmp_path, "more", more), "Deployment")["spec"]["replicas"] == 5

    other = "sha256:" + "cd" * 32
    moved = _objects_for(tmp_path, "digest", record=_image_record(tmp_path, other))
    image = _kind(moved, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/lukealonso/glm51@{other}"

    two = _recipe(tmp_path, **{'profile = "rtx-pro-6000-x8"    #': f'profile = "{TWO_NODE}"  #'})
    lws = _kind(_objects_for(tmp_path, "two", two), "LeaderWorkerSet")
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2 and lws["spec"]["replicas"] == 2
    three = _recipe(
        tmp_path,
        **{
            'profile = "rtx-pro-6000-x8"    #': f'profile = "{TWO_NODE}"  #',
            "gpu_count = 4  # per node\nnodes = 2": "gpu_count = 4  # per node\nnodes = 3",
        },
    )
    lws3 = _kind(_objects_for(tmp_path, "three", three), "LeaderWorkerSet")
    assert lws3["spec"]["leaderWorkerTemplate"]["size"] == 3
    leader = lws3["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    worker = lws3["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    assert leader["args"][leader["args"].index("--nnodes") + 1] == "3"
    assert worker["args"][worker["args"].index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
    assert "readinessProbe" in leader and "readinessProbe" not in worker
    assert {e["name"] for e in leader["env"]} == {"NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"}


def _objects_for(tmp_path, out, recipe=None, record=None):
    result = _deploy(tmp_path, recipe=recipe, record=record, out=out)
    assert result.exit_code == 0, result.output
    return _objects(tmp_path / out)


def test_the_gateway_finds_the_serving_pods_by_label_with_rbac_to_list_them(tmp_path):
    objs = _objects_for(tmp_path, "gw")
    role = _kind(objs, "Role", "gateway")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    binding = _kind(objs, "RoleBinding", "gateway")
    account = _kind(objs, "ServiceAccount", "gateway")["metadata"]["name"]
    assert binding["subjects"][0]["name"] == account
    gateway = _kind(objs, "Deployment", "gateway")["spec"]["template"]["spec"]
    assert gateway["serviceAccountName"] == account
    args = gateway["containers"][0]["args"]
    selector = args[args.index("--selector") + 1 : args.index("--service-discovery-port")]
    assert f"{SERVES}=openai" in selector
    labels = _kind(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in (s.split("=") for s in selector))
    service = _kind(objs, "Service", "gateway")
    assert service["spec"]["ports"][0]["port"] == 8000


def test_the_key_comes_from_a_secret_never_the_manifests(tmp_path, monkeypatch):
    monkeypatch.setenv("GLM51_API_KEY", "sk-never-in-a-manifest")
    objs = _objects_for(tmp_path, "key")
    text = "".join(p.read_text() for p in (tmp_path / "key").glob("*.yaml"))
    assert "sk-never-in-a-manifest" not in text and "Secret" not in {o["kind"] for o in objs}
    pod = _kind(objs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "api-key"]
    assert volume["secret"]["secretName"] == "glm51-api-key"
    args = pod["containers"][0]["args"]
    assert args[args.index("--api-key-file") + 1] == "/var/run/secrets/glm51/api-key"
    gateway = _kind(objs, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert gateway["command"][-2:] == ["--api-key-file", "/var/run/secrets/glm51/api-key"]
    assert "--api-key" not in gateway["args"]


def test_shm_volumes_and_probes(tmp_path):
    pod = _kind(_objects_for(tmp_path, "vol"), "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert volumes["model"]["persistentVolumeClaim"]["claimName"] == "glm51-model"
    assert volumes["jit-cache"]["persistentVolumeClaim"]["claimName"] == "glm51-jit-cache"
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 5000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 5000}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--replicas", "0"], "--replicas 0: expected at least 1"),
        (["--profile", "nope"], "unknown profile 'nope'"),
    ],
)
def test_bad_options_are_exit_3_and_write_nothing(tmp_path, args, words):
    result = _deploy(tmp_path, *args)
    assert exit_code(result) == 3 and words in error_text(result)
    assert not (tmp_path / "k8s").exists()


def test_a_replica_count_of_0_in_the_recipe_is_exit_3(tmp_path):
    result = _deploy(tmp_path, recipe=_recipe(tmp_path, **{"replicas = 2": "replicas = 0"}))
    assert exit_code(result) == 3 and "deploy.replicas" in error_text(result)
    assert not (tmp_path / "k8s").exists()


def test_an_image_not_pushed_is_exit_3(tmp_path):
    result = _deploy(tmp_path, record=_image_record(tmp_path, pushed=False))
    assert exit_code(result) == 3 and "was not pushed" in error_text(result)
    assert not (tmp_path / "k8s").exists()


def test_no_router_image_is_exit_3_naming_the_option(tmp_path):
    argv = ["deploy", "k8s", "--out", str(tmp_path / "k8s")]
    argv += ["--image-record", str(_image_record(tmp_path))]
    result = CliRunner().invoke(app, argv)
    assert exit_code(result) == 3 and "--router-image" in error_text(result)


def test_a_dry_run_prints_and_writes_nothing(tmp_path):
    result = _deploy(tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "# ---- 10-replicas.yaml" in result.output and "kind: Deployment" in result.output
    assert not (tmp_path / "k8s").exists()


def test_an_image_record_inside_out_is_refused_and_left_as_it_was(tmp_path):
    """--out is rewritten whole: an input inside it (here under a name the render writes)
    would be written over."""
    assert _deploy(tmp_path).exit_code == 0
    inside = tmp_path / "k8s" / "10-replicas.yaml"
    inside.write_text(_image_record(tmp_path).read_text())
    before = inside.read_bytes()
    result = _deploy(tmp_path, record=inside)
    assert exit_code(result) == 3, result.output
    assert "--out" in error_text(result) and "--image-record" in error_text(result)
    assert inside.read_bytes() == before
