"""The trainer's view of the data: config -> validated records -> train and eval batches,
and the colour prior of the records training keeps.

Everything here runs before any compilation, so a missing path, corrupt records or an
impossible batch size stop the run in seconds with one clear message. The training
iterator follows the run's resolution schedule (`schedule.Schedule.data_stages`), one
iterator for all stages. With `config.loss.rebalance`, the class-rebalancing weights come
from the ab histograms of exactly the records the filter keeps in the training split, over
all processes' shards, so every process computes the same weights.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh

from jaxcolor.data import pipeline, stats
from jaxcolor.data import prior as prior_lib
from jaxcolor.data.records import Records
from jaxcolor.errors import MissingPathError, UsageError
from jaxcolor.train.prefetch import DevicePrefetch
from jaxcolor.train.schedule import Schedule


class DataConfigError(UsageError):
    """config.data points at nothing usable."""


@dataclasses.dataclass
class Inputs:
    """Training iterator (checkpointed with the state) and the validation source."""

    mesh: Mesh
    train_iter: DevicePrefetch  # global device batches; its state is checkpointed
    val_records: Records | None
    val_split: str | None
    global_batch: int
    crop_size: int
    thresholds: stats.FilterThresholds  # validation is filtered like training
    ab_weights: np.ndarray | None = None  # rebalancing weights [prior.BINS] (loss.rebalance)

    @property
    def has_val(self) -> bool:
        return self.val_records is not None

    def next_train_batch(self) -> dict[str, jax.Array]:
        return next(self.train_iter)

    def val_batches(self, max_images: int) -> Iterator[tuple[dict[str, jax.Array], np.ndarray]]:
        """(global batch, local mask) pairs over the validation split, in fixed order."""
        ds, _ = pipeline.make_eval_dataset(
            self.val_records, global_batch=self.global_batch, crop_size=self.crop_size,
            split=self.val_split, thresholds=self.thresholds, shard_index=jax.process_index(),
            shard_count=jax.process_count(), mesh=self.mesh)
        seen = 0
        for local in ds:
            if seen >= max_images:
                break
            batch = pipeline.make_global_batch({"L": local["L"], "ab": local["ab"]}, self.mesh)
            seen += self.global_batch
            yield batch, np.asarray(local["mask"])

    def close(self) -> None:
        self.train_iter.close()


def _open(path, field: str) -> Records:
    if not path:
        raise DataConfigError(f"config.{field}: not set; point it at a records directory "
                              "(make one with `jaxcolor ingest`)")
    if not Path(path).exists():
        raise MissingPathError(f"config.{field}={path}: no such directory")
    return Records(path)  # RecordsError names the damaged file


def make_inputs(config, mesh: Mesh, schedule: Schedule) -> Inputs:
    """Open and validate the records of `config.data`, then build the pipelines (the
    training iterator in the run's resolution stages)."""
    data_cfg = config.data
    if data_cfg.build_demo:
        from jaxcolor.data import demo  # scikit-image's photos; only the demo needs them

        demo.ensure_demo_records(data_cfg.train, size=int(data_cfg.demo_image_size),
                                 crops_per_photo=int(data_cfg.demo_crops_per_photo),
                                 seed=int(config.seed))
    train = _open(data_cfg.train, "data.train")
    thresholds = stats.FilterThresholds.from_config(data_cfg.filter)
    stages = schedule.data_stages(int(data_cfg.crop_size), int(config.batch_size))
    train_iter, info = pipeline.make_train_iterator(
        train, global_batch=int(config.batch_size), crop_size=int(data_cfg.crop_size),
        flip=bool(data_cfg.flip), seed=int(data_cfg.shuffle_seed), thresholds=thresholds,
        shard_index=jax.process_index(), shard_count=jax.process_count(),
        num_workers=int(data_cfg.num_workers), prefetch=int(data_cfg.prefetch), mesh=mesh,
        stages=tuple(pipeline.Stage(*st) for st in stages))
    logging.info("training records: %d kept of %d (removed per filter rule: %s)",
                 info.kept, info.split_records, info.removed)
    weights = _rebalancing_weights(config, train, thresholds)
    try:
        val_records, val_split = pipeline.validation_source(
            train, _checked_val_path(data_cfg.val))
    except pipeline.PipelineError as e:
        logging.warning("no validation: %s", e)
        val_records, val_split = None, None
    def to_device(local: dict) -> dict[str, jax.Array]:
        return pipeline.make_global_batch({k: local[k] for k in ("L", "ab", "flip")}, mesh)

    train_iter = DevicePrefetch(train_iter, to_device, depth=int(data_cfg.prefetch))
    return Inputs(mesh=mesh, train_iter=train_iter, val_records=val_records,
                  val_split=val_split, global_batch=int(config.batch_size),
                  crop_size=int(data_cfg.crop_size), thresholds=thresholds, ab_weights=weights)


def _rebalancing_weights(config, train: Records,
                         thresholds: stats.FilterThresholds) -> np.ndarray | None:
    """Zhang et al.'s weights from the prior of the training records the filter keeps."""
    loss = config.get("loss", {})
    if not loss.get("rebalance", False):
        return None
    mix, sigma = float(loss.rebalance_mix), float(loss.rebalance_sigma)
    if not 0.0 <= mix <= 1.0 or sigma < 0:
        raise UsageError(f"config.loss: rebalance_mix={mix} must be in [0, 1] and "
                         f"rebalance_sigma={sigma} >= 0")
    kept, _ = pipeline.select_split(train, "train", thresholds)
    counts = train.ab_histograms()[kept].sum(axis=0, dtype=np.int64)
    empirical = prior_lib.empirical_prior(counts)
    weights = prior_lib.rebalancing_weights(empirical, sigma=sigma, mix=mix)
    logging.info("colour prior of %d training records: %s", len(kept),
                 prior_lib.summary(weights, empirical))
    return weights


def _checked_val_path(path):
    if path and not Path(path).exists():
        raise MissingPathError(f"config.data.val={path}: no such directory")
    return path

