"""Which node(s) of a replica this `glm51 serve` launches or prints (multi-node profiles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from glm51.errors import InputError
from glm51.recipe.serving import Profile
from glm51.sglang.command import Placement

if TYPE_CHECKING:
    from glm51.serve.launch import Options


def placements(profile_name: str, profile: Profile, options: Options) -> list[Placement | None]:
    """The node(s) to launch or print: [None] for a one-node profile; else this node (or, in a
    dry run without --node-rank, every node). Wrong or missing node options are bad input."""
    nodes = profile.hardware.nodes
    given = options.nnodes is not None or options.node_rank is not None
    if nodes == 1 and not given and options.dist_init_addr is None:
        return [None]
    nnodes = options.nnodes if options.nnodes is not None else nodes
    if nnodes != nodes:
        raise InputError(
            f"--nnodes {nnodes}: profile {profile_name} spans {nodes} node(s) "
            f"(hardware.nodes); expected --nnodes {nodes}"
        )
    if options.node_rank is not None and not 0 <= options.node_rank < nnodes:
        raise InputError(
            f"--node-rank {options.node_rank}: outside --nnodes {nnodes}; "
            f"expected 0 to {nnodes - 1}"
        )
    addr = options.dist_init_addr
    if nodes == 1 and addr is None:
        return [None]  # --nnodes 1 or --node-rank 0 on a one-node profile: nothing to place
    if addr is None:
        raise InputError(
            f"--dist-init-addr: profile {profile_name} spans {nnodes} nodes; give HOST:PORT of "
            "node 0 (the same on every node)"
        )
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InputError(f"--dist-init-addr {addr!r}: expected HOST:PORT, e.g. 10.0.0.1:20000")
    if options.node_rank is None:
        if not options.dry_run:
            raise InputError(
                f"--node-rank: profile {profile_name} spans {nnodes} nodes; give this node's "
                f"rank (0 to {nnodes - 1})"
            )
        return [Placement(nnodes, rank, addr) for rank in range(nnodes)]
    return [Placement(nnodes, options.node_rank, addr)]
