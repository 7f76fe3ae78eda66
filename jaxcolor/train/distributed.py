"""Multi-host start-up: `jax.distributed.initialize` when the config or the launcher asks.

After it, `jaxcolor.sharding.make_mesh()` spans every device of every process.
"""

from __future__ import annotations

import os

import jax
from absl import logging

from jaxcolor.errors import UsageError


class DistributionError(UsageError):
    """The batch cannot be split over the devices/processes as configured."""


def _enabled(value) -> bool | str:
    """`config.distributed.enabled` as True, False or "auto". The field holds a string, so a
    command-line `--config.distributed.enabled=False` arrives as the (truthy) text "False"."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "true", "false"):
        return {"true": True, "false": False}.get(text, "auto")
    raise DistributionError(f"config.distributed.enabled={value!r}: choose auto, True or False")


def initialize_distributed(cfg) -> None:
    """`jax.distributed.initialize` when the config or the environment asks for several hosts.

    `cfg` is `config.distributed`: `enabled` (bool, or "auto": on when a coordinator address is
    in the environment, as on Cloud TPU VMs or SLURM/Open MPI launches, which JAX detects),
    and optional `coordinator_address`, `num_processes`, `process_id`. On CPU the gloo
    collectives are selected so that processes can all-reduce over localhost.
    """
    enabled = _enabled(cfg.enabled)
    if enabled == "auto":
        enabled = any(k in os.environ for k in ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID",
                                                "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES"))
    if not enabled:
        return
    if cfg.get("cpu_collectives", "gloo") and jax.config.jax_platforms in (None, "", "cpu"):
        jax.config.update("jax_cpu_collectives_implementation", cfg.get("cpu_collectives", "gloo"))
    kwargs = {k: cfg.get(k) for k in ("coordinator_address", "num_processes", "process_id")
              if cfg.get(k) is not None}
    jax.distributed.initialize(**kwargs)
    logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())

