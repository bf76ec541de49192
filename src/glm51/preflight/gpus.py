"""The GPUs, read through one adapter over `nvidia-smi --query-gpu`, and checked (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from glm51 import proc
from glm51.errors import Glm51Error
from glm51.preflight.findings import Finding, Severity
from glm51.recipe.serving import Profile

FIELDS = ("index", "name", "compute_cap", "driver_version", "memory.total")
QUERY = [
    "nvidia-smi",
    f"--query-gpu={','.join(FIELDS)}",
    "--format=csv,noheader,nounits",
]


class NoGpu(Exception):
    """nvidia-smi is missing or cannot talk to the driver; the message says which."""


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_cap: str  # "12.0"
    driver: str  # "595.45.04"
    memory_mib: int

    @property
    def cc_major(self) -> int:
        return int(self.compute_cap.split(".")[0])


GpuProbe = Callable[[], list[GpuInfo]]


def parse(text: str) -> list[GpuInfo]:
    """Parse nvidia-smi's csv,noheader,nounits rows; raises NoGpu on anything else."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(FIELDS):
            raise NoGpu(f"unexpected nvidia-smi output: {line.strip()}")
        index, name, cc, driver, memory = cells
        try:
            gpus.append(GpuInfo(int(index), name, cc, driver, int(float(memory))))
        except ValueError:
            raise NoGpu(f"unexpected nvidia-smi output: {line.strip()}") from None
    if not gpus:
        raise NoGpu("nvidia-smi listed no GPUs")
    return gpus


def nvidia_smi() -> list[GpuInfo]:
    """The real probe: nvidia-smi through the subprocess chokepoint."""
    try:
        result = proc.run(QUERY, check=False, timeout=60)
    except Glm51Error as exc:  # not on PATH, or hung
        raise NoGpu(str(exc)) from None
    if result.returncode != 0:
        said = (result.stdout + result.stderr).strip().splitlines()
        raise NoGpu(f"nvidia-smi exited with {result.returncode}: {' '.join(said)[:300]}")
    return parse(result.stdout)


def visible(gpus: list[GpuInfo], cuda_visible_devices: str | None) -> list[GpuInfo]:
    """The GPUs CUDA_VISIBLE_DEVICES leaves to sglang (nvidia-smi lists them all).

    Only index lists are understood; UUIDs or MIG names leave the list as it is.
    """
    if cuda_visible_devices is None:
        return gpus
    wanted = [p.strip() for p in cuda_visible_devices.split(",") if p.strip()]
    if not all(p.isdigit() for p in wanted):
        return gpus
    by_index = {g.index: g for g in gpus}
    return [by_index[int(p)] for p in wanted if int(p) in by_index]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _node(node: tuple[int, int] | None) -> str:
    return "" if node is None else f"node {node[0]} of {node[1]}: "


def node_env(
    profile: Profile, node: tuple[int, int] | None, environ: Mapping[str, str]
) -> list[Finding]:
    """The variables a multi-node profile asks every node to set (its NCCL/Gloo interfaces)."""
    missing = [name for name in profile.node_env if not environ.get(name)]
    if not missing:
        return []
    return [
        Finding(
            "network.env",
            Severity.ERROR,
            f"{_node(node)}{', '.join(missing)} not set: the profile spans "
            f"{profile.hardware.nodes} nodes and names {', '.join(profile.node_env)}",
            "export each on this node (e.g. NCCL_SOCKET_IFNAME=eth0, the interface that "
            "reaches the other nodes)",
        )
    ]


def check(
    profile: Profile, gpus: list[GpuInfo], *, node: tuple[int, int] | None = None
) -> list[Finding]:
    """GPU count (per node), model, compute capability, driver and memory against the profile."""
    hw = profile.hardware
    found: list[Finding] = []
    if len(gpus) < hw.gpu_count:
        per_node = " per node" if hw.nodes > 1 else ""
        pp = f" x pp {profile.server.pp_size}" if profile.server.pp_size else ""
        found.append(
            Finding(
                "gpu.count",
                Severity.ERROR,
                f"{_node(node)}too few GPUs: found {len(gpus)}, the profile needs "
                f"{hw.gpu_count}{per_node} (tp {profile.server.tp}{pp})",
                "run on a machine with enough GPUs, or pick a profile for this machine (--profile)",
            )
        )
    names = sorted({g.name for g in gpus})
    if len(names) > 1:
        found.append(
            Finding(
                "gpu.mixed",
                Severity.WARNING,
                f"mixed GPU models: {', '.join(names)}",
                "set CUDA_VISIBLE_DEVICES to identical GPUs",
            )
        )

    # One finding per problem, naming every GPU it applies to (not eight copies).
    def which(bad: list[GpuInfo]) -> str:
        shown = ", ".join(str(g.index) for g in bad)
        return f"GPU{'s' if len(bad) > 1 else ''} {shown} ({bad[0].name})"

    other_model = [g for g in gpus if hw.gpu_name.lower() not in g.name.lower()]
    if other_model:
        found.append(
            Finding(
                "gpu.model",
                Severity.WARNING,
                f"{which(other_model)}: not a {hw.gpu_name}, the profile's hardware",
                "expect different memory and speed; the profile's numbers do not apply",
            )
        )
    other_cc = [g for g in gpus if g.compute_cap != hw.compute_capability]
    if other_cc:
        # b12x kernels are SM120/SM121 only: another family cannot run them at all.
        fatal = profile.uses_b12x and any(g.cc_major != hw.major for g in other_cc)
        found.append(
            Finding(
                "gpu.compute-capability",
                Severity.ERROR if fatal else Severity.WARNING,
                f"{which(other_cc)}: compute capability {other_cc[0].compute_cap}, the profile is "
                f"for {hw.compute_capability}" + (" (the b12x kernels need 12.x)" if fatal else ""),
                "use Blackwell 12.x GPUs (RTX PRO 6000), or a profile without b12x backends"
                if fatal
                else "check that the profile's backends support this GPU",
            )
        )
    old_driver = [g for g in gpus if _version(g.driver) < _version(hw.min_driver)]
    if old_driver:
        found.append(
            Finding(
                "gpu.driver",
                Severity.ERROR,
                f"{which(old_driver)}: driver {old_driver[0].driver} is older than the profile's "
                f"minimum {hw.min_driver}",
                f"install NVIDIA driver {hw.min_driver} or newer",
            )
        )
    small = [g for g in gpus if g.memory_mib < hw.min_memory_mib]
    if small:
        found.append(
            Finding(
                "gpu.memory",
                Severity.WARNING,
                f"{which(small)}: {small[0].memory_mib} MiB, the profile expects at least "
                f"{hw.min_memory_mib} MiB per GPU",
                "lower --mem-fraction-static / --max-running-requests, or expect out-of-memory",
            )
        )
    return found


def no_gpu_finding(reason: str) -> Finding:
    return Finding(
        "gpu.none",
        Severity.ERROR,
        f"no GPU found: {reason}",
        "install the NVIDIA driver and run with the GPUs visible "
        "(docker run --gpus all); `nvidia-smi` must work",
    )
