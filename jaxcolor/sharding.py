"""The one mesh layout jaxcolor uses: a 1-D `data` axis over devices, Auto axis types.

Batches are sharded over `data`, model state is replicated. The same code runs on one CPU,
eight GPUs or a TPU pod slice; JAX's own runtime does the communication. Training meshes
span every device of every process; host-side work that needs no other host (statistics at
ingestion) uses this process's devices only.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D `data` mesh over `devices` (default: all devices of all processes).

    Auto axes, not `jax.make_mesh`'s Explicit default: NNX modules created outside
    `jax.set_mesh` fail with a ShardingTypeError under Explicit axes.
    """
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def local_mesh() -> Mesh:
    """A `data` mesh over this process's devices only."""
    return make_mesh(jax.local_devices())


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))
