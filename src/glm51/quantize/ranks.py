"""Data-parallel bounded calibration: the ranks of a `torchrun` job and what they exchange.

Every rank owns a fixed, contiguous share of each unit's samples, so per-sample offsets and
order stay those of one process. Max calibration reduces by max and expert counts add, so
all_reduce(MAX) of the amaxes, all_reduce(SUM) of the counts and all_reduce(MIN) of the
first sightings give exactly the single-process result: no float is summed, nothing is
approximated. gloo on the CPU, NCCL on GPUs; one process is `SINGLE`, whose collectives are
the identity.
"""

from __future__ import annotations

import contextlib
import os
import signal
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np

from glm51 import env
from glm51.calib.coverage import ExpertCounts
from glm51.errors import InfraError, InputError

T = TypeVar("T")

# A rank waits at a collective while rank 0 alone writes the index and the manifest of a
# 400 GB checkpoint: far longer than NCCL's 10-minute default.
TIMEOUT = timedelta(hours=2)
_NEVER = np.iinfo(np.int64).max  # first_seen's "never" (-1) while reducing by MIN


def torchrun_world() -> int:
    """WORLD_SIZE as torchrun sets it (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r}: not a number") from None


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"  # this rank's device: cuda:LOCAL_RANK under NCCL

    @property
    def leader(self) -> bool:
        """Rank 0: the one that writes what every rank computed alike."""
        return self.rank == 0

    def share(self, n: int) -> range:
        """This rank's contiguous share of n samples (sizes differ by at most one)."""
        return range(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    def owns_layer(self, i: int) -> bool:
        """The export's layers, round-robin: dense and MoE layers spread evenly."""
        return i % self.world == self.rank

    # ------------------------------------------------------------ collectives
    @contextlib.contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        try:
            yield
        except RuntimeError as exc:  # gloo/NCCL: a peer died or the network broke
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise InfraError(
                f"rank {self.rank} of {self.world}: {what} with the other ranks failed: another "
                f"rank stopped (its own error, or the launcher's, names it) or the network "
                f"between them broke ({type(exc).__name__}: {first})"
            ) from None

    def max_amax(self, amax: Mapping[str, Any]) -> dict[str, Any]:
        """Element-wise max over ranks of every quantizer's amax. A quantizer that a rank never
        reached (no sample of its share) is absent there and contributes nothing."""
        if self.world == 1:
            return dict(amax)
        import torch
        import torch.distributed as dist

        with self._collective("the all_gather of the quantizer names"):
            names: list[Any] = [None] * self.world
            local = {k: (tuple(v.shape), str(v.dtype)) for k, v in amax.items()}
            dist.all_gather_object(names, local)
        union: dict[str, tuple] = {}
        for part in names:
            union.update(part)
        out: dict[str, Any] = {}
        by_dtype: dict[str, list[str]] = {}
        for name in sorted(union):
            by_dtype.setdefault(union[name][1], []).append(name)
        for dtype_name, keys in by_dtype.items():
            dtype = getattr(torch, dtype_name.removeprefix("torch."))
            parts = []
            for k in keys:
                shape = union[k][0]
                # Absent here: the lowest value of the dtype, which max ignores.
                fill = torch.full(shape, torch.finfo(dtype).min, dtype=dtype)
                parts.append(amax[k].reshape(shape).to(dtype) if k in amax else fill)
            flat = torch.cat([p.reshape(-1) for p in parts]).to(self.device)
            with self._collective("all_reduce(MAX) of the amaxes"):
                dist.all_reduce(flat, op=dist.ReduceOp.MAX)
            flat, at = flat.cpu(), 0
            for k, p in zip(keys, parts, strict=True):
                out[k] = flat[at : at + p.numel()].reshape(p.shape).clone()
                at += p.numel()
        return out

    def sum_counts(self, counts: ExpertCounts) -> ExpertCounts:
        """Tokens per expert add; the first sighting (a global offset) is the earliest."""
        if self.world == 1:
            return counts
        import torch
        import torch.distributed as dist

        total = torch.from_numpy(counts.counts.copy()).to(self.device)
        first = np.where(counts.first_seen >= 0, counts.first_seen, _NEVER)
        earliest = torch.from_numpy(first).to(self.device)
        with self._collective("all_reduce of the expert counts"):
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            dist.all_reduce(earliest, op=dist.ReduceOp.MIN)
        seen = earliest.cpu().numpy()
        return ExpertCounts(
            counts.layers, total.cpu().numpy(), np.where(seen == _NEVER, -1, seen), counts.tokens
        )

    def from_leader(self, make: Callable[[], T]) -> T:
        """What rank 0 computes (read from its disk, decided), handed to every rank."""
        if self.world == 1:
            return make()
        import torch.distributed as dist

        box = [make() if self.leader else None]
        with self._collective("the broadcast from rank 0"):
            dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def barrier(self, what: str) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        with self._collective(what):
            dist.barrier()

    def all_gather(self, value: T, what: str) -> list[T]:
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        with self._collective(what):
            dist.all_gather_object(out, value)
        return out

    def agree(self, inputs: Mapping[str, str]) -> None:
        """Refuse (exit 3, on every rank alike) ranks that were given different inputs: each
        value is a digest or a path, compared with rank 0's before any work."""
        every = self.all_gather(dict(inputs), "comparing the inputs")
        differ = []
        for r, theirs in enumerate(every[1:], 1):
            keys = [k for k in every[0] if theirs.get(k) != every[0][k]]
            differ += [f"rank {r} has another {k} ({theirs.get(k)} vs {every[0][k]})" for k in keys]
        if differ:
            raise InputError(
                "the ranks were given different inputs, so their shares would not add up to one "
                f"calibration: {'; '.join(differ)}. Give every rank the same --model, recipe, "
                "calibration data and --output"
            )

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


SINGLE = Ranks()


def without_modelopt_sync(qcfg: dict[str, Any], ranks: Ranks) -> dict[str, Any]:
    """The ModelOpt config a rank calibrates with. Under torch.distributed ModelOpt would
    all-reduce each amax it has itself; a rank without a quantizer's amax (no sample of its
    share reached it) skips that all-reduce while the others wait in it. glm51 reduces every
    amax itself (`Ranks.max_amax`), absent ones included, so ModelOpt's sync is turned off."""
    if ranks.world == 1:
        return qcfg
    algorithm = qcfg["algorithm"]
    algorithm = {"method": algorithm} if isinstance(algorithm, str) else dict(algorithm)
    return {**qcfg, "algorithm": {**algorithm, "distributed_sync": False}}


def join(device: str) -> Ranks:
    """This process's rank under torchrun (its env: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*),
    with the process group started: NCCL for a CUDA device (cuda:LOCAL_RANK), gloo for the
    CPU. SINGLE outside torchrun."""
    world = torchrun_world()
    if world <= 1:
        return SINGLE
    import torch
    import torch.distributed as dist

    try:
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    except (KeyError, ValueError) as exc:
        raise InputError(
            f"WORLD_SIZE={world} but RANK, LOCAL_RANK or LOCAL_WORLD_SIZE is unset or not a "
            f"number ({exc}): start the ranks with torchrun (or glm51 quantize --nproc)"
        ) from None
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
        backend = "nccl"
    else:
        device, backend = "cpu", "gloo"
        if "OMP_NUM_THREADS" not in os.environ:  # the box's cores shared by its ranks
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    # ModelOpt's note for tensor-parallel training, once per module: not our case (data
    # parallel, every module whole on every rank).
    warnings.filterwarnings("ignore", message="Distributed training is initialized but no")
    if not dist.is_initialized():
        try:
            nccl = {"device_id": torch.device(device)} if backend == "nccl" else {}
            dist.init_process_group(backend, timeout=TIMEOUT, **nccl)
        except (RuntimeError, ValueError) as exc:
            raise InfraError(
                f"rank {rank} of {world}: could not join the other ranks ({backend} at "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}): {exc}"
            ) from None
    return Ranks(rank, world, local, device)


def fault_injection_hook(ranks: Ranks, unit: str, layer: int) -> None:
    """TEST HOOK, for the fault-injection tests only: GLM51_TEST_KILL_RANK=RANK:UNIT:LAYER
    kills this rank with SIGKILL in the middle of calibrating LAYER of UNIT, as the OOM
    killer or a lost node would. Unset (always, outside those tests): nothing."""
    spec = os.environ.get(env.TEST_KILL_RANK)
    if not spec:
        return
    rank, where, at = spec.rsplit(":", 2)
    if int(rank) == ranks.rank and where == unit and int(at) == layer:
        os.kill(os.getpid(), signal.SIGKILL)
