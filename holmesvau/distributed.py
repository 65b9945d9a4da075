"""Rank, world size and shards for the batch tools (tools/predict.py, tools/extract_features.py).

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK and MASTER_ADDR (the ranks can meet at a barrier); a job array setting
only RANK / WORLD_SIZE has no barrier, its outputs are merged afterwards; no launcher: rank 0 of 1. Rank r takes
items r, r + W, r + 2W, ... of a list every rank sees in the same order: disjoint, balanced shards.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    can_barrier: bool = False  # launched by torchrun (a rendezvous to wait at)


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None


def dist_env() -> DistEnv:
    """This process's place in the job, from the environment; ValueError for inconsistent values."""
    rank, world = _int_env("RANK", 0), _int_env("WORLD_SIZE", 1)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad RANK={rank} / WORLD_SIZE={world} (need 0 <= RANK < WORLD_SIZE)")
    local = _int_env("LOCAL_RANK", rank)
    return DistEnv(rank, world, local, world > 1 and "MASTER_ADDR" in os.environ)


def shard(items: Sequence, rank: int = 0, world_size: int = 1) -> list:
    """Items rank, rank + world_size, ... (see the module docstring)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world size {world_size}")
    return list(items[rank::world_size])


def default_device(device: str | None, env: DistEnv | None = None) -> str:
    """`device` if given; else this rank's GPU (cuda:LOCAL_RANK) when there is one, else cpu. A bare "cuda"
    under a multi-process launch also becomes cuda:LOCAL_RANK, so ranks do not share one GPU."""
    env = env or dist_env()
    if device is None:
        import torch

        return f"cuda:{env.local_rank}" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and env.world_size > 1:
        return f"cuda:{env.local_rank}"
    return device


def barrier_then(env: DistEnv, fn: Callable[[], object]) -> None:
    """All ranks wait for each other (gloo: CPU only, no GPU needed), rank 0 runs `fn`, all wait again."""
    import torch.distributed as dist

    if not env.can_barrier:
        raise RuntimeError(
            "no rendezvous to wait at (not launched by torchrun): merge the outputs afterwards"
        )
    if not dist.is_initialized():  # a long job: ranks finish far apart
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
    try:
        dist.barrier()
        if env.rank == 0:
            fn()
        dist.barrier()
    finally:
        dist.destroy_process_group()
