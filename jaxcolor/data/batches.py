"""The training stream's pieces: which records each step reads, how they are read, and what
a step makes of a batch on the device (`prepare_batch`).

`jaxcolor.data.pipeline` wraps these in Grain datasets (its docstring explains why the
elements of those datasets are whole batches). Both classes are picklable and pure
functions of (seed, process shard, step), so a batch is the same with 0 or N worker
processes, after a restore, and in any stage of a resolution schedule (`Stage`).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxcolor import color
from jaxcolor.data.records import Records

# First element of every seed tuple, so that the shuffle and the augmentation never share a
# random stream even for equal (seed, process, epoch == step).
_SHUFFLE, _AUGMENT = 0, 1


# --------------------------------------------------------------------------------------
# Index stream: which records each step reads.
# --------------------------------------------------------------------------------------


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, shard_index: int, epoch: int, n: int) -> np.ndarray:
    """The order of epoch `epoch` of a shard of `n` records (pure; cached per process)."""
    perm = _rng(_SHUFFLE, seed, shard_index, epoch).permutation(n)
    perm.flags.writeable = False
    return perm


@dataclasses.dataclass(frozen=True)
class Stage:
    """From global step `first_step` on (until the next stage), batches of `global_batch`
    records cropped to `crop_size`: a resolution schedule is a list of these."""

    first_step: int
    crop_size: int
    global_batch: int


def _stage_of(first_steps: tuple[int, ...], step: int) -> int:
    return bisect.bisect_right(first_steps, int(step)) - 1


class _EpochBatches:
    """Endless random-access sequence: step -> {"index": sorted record indices of its batch}.

    Position p of the stream is record `indices[perm_e[p % n]]` with e = p // n, so the
    stream is shuffle -> repeat -> batch of `indices`, computable for any step in O(batch).
    Sorted because order inside a random batch does not matter and sorted reads are fastest.
    With a resolution schedule the batch size changes between stages; the stream runs on
    (stage k's first batch starts where stage k - 1's last ended), so a stage change neither
    repeats nor skips records, and any step's batch is still a pure function of the step.
    """

    def __init__(self, indices: np.ndarray, batch_sizes: tuple[tuple[int, int], ...],
                 seed: int, shard_index: int):
        self.indices = np.asarray(indices, np.int64)
        self.first_steps = tuple(int(first) for first, _ in batch_sizes)
        self.batch_sizes = tuple(int(b) for _, b in batch_sizes)
        # Stream position of each stage's first batch.
        starts = [0]
        for k in range(1, len(batch_sizes)):
            starts.append(starts[-1] + (self.first_steps[k] - self.first_steps[k - 1])
                          * self.batch_sizes[k - 1])
        self.starts = tuple(starts)
        self.seed = int(seed)
        self.shard_index = int(shard_index)

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, step: int) -> dict[str, np.ndarray]:
        n = len(self.indices)
        k = _stage_of(self.first_steps, step)
        start = self.starts[k] + (int(step) - self.first_steps[k]) * self.batch_sizes[k]
        stop = start + self.batch_sizes[k]
        parts = []
        for epoch in range(start // n, (stop - 1) // n + 1):
            lo, hi = max(start, epoch * n) - epoch * n, min(stop, (epoch + 1) * n) - epoch * n
            parts.append(_epoch_permutation(self.seed, self.shard_index, epoch, n)[lo:hi])
        return {"index": np.sort(self.indices[np.concatenate(parts)])}

    def __repr__(self) -> str:
        return (f"_EpochBatches(n={len(self.indices)}, batch_sizes={self.batch_sizes}, "
                f"seed={self.seed}, shard_index={self.shard_index})")


# --------------------------------------------------------------------------------------
# Reading and augmentation: index batch -> uint8 arrays.
# --------------------------------------------------------------------------------------


def crop_windows(L8: np.ndarray, ab8: np.ndarray, top: np.ndarray, left: np.ndarray,
                 size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square `size` windows at (top[i], left[i]) of L8 [n, H, W] and ab8 [n, H, W, 2].

    When the window is the whole image the inputs are returned as they are (the pipeline
    passes freshly read buffers it owns), which saves a copy of the batch. One strided copy
    per image otherwise: ~4x faster than a batched fancy-index gather at 224^2. The (a, b)
    pairs are moved as one uint16 each, several times faster than a trailing axis of 2.

    Horizontal flips are not done here: mirroring costs numpy about twice the read itself
    (it copies element by element), while on the device it is free. The pipeline emits a
    per-image `flip` flag and `prepare_batch` mirrors inside the jitted step.
    """
    n, h, w = L8.shape
    if size == h == w:
        return L8, ab8
    L_out = np.empty((n, size, size), np.uint8)
    ab_out = np.empty((n, size, size, 2), np.uint8)
    ab16, ab16_out = _pairs_as_uint16(ab8), _pairs_as_uint16(ab_out)
    for i in range(n):
        rows = slice(int(top[i]), int(top[i]) + size)
        cols = slice(int(left[i]), int(left[i]) + size)
        L_out[i] = L8[i, rows, cols]
        ab16_out[i] = ab16[i, rows, cols]
    return L_out, ab_out


def downscale(L8: np.ndarray, ab8: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole windows L8 [n, S, S] and ab8 [n, S, S, 2] shrunk to `size` x `size` (Pillow's
    antialiased bilinear filter, on the 8-bit planes: a8 = a + 128 is linear in a, so the
    colour is averaged as the lightness is). Progressive training's early stages see the
    whole crop at a lower resolution, as DeOldify's do, not a smaller window of it."""
    n = len(L8)
    L_out = np.empty((n, size, size), np.uint8)
    ab_out = np.empty((n, size, size, 2), np.uint8)

    def shrink(plane):
        return np.asarray(Image.fromarray(plane).resize((size, size), Image.Resampling.BILINEAR))

    for i in range(n):
        L_out[i] = shrink(L8[i])
        for c in range(2):
            ab_out[i, ..., c] = shrink(np.ascontiguousarray(ab8[i, ..., c]))
    return L_out, ab_out


def _pairs_as_uint16(ab8: np.ndarray) -> np.ndarray:
    """[..., 2] uint8 -> [...] uint16 view of the same memory (a, b moved together)."""
    return ab8.view(np.uint16).reshape(ab8.shape[:-1])


class _ReadBatch:
    """(step, {"index"[, "mask"]}) -> {"L", "ab", "flip", "index"[, "mask"]}; picklable.

    Training (`augment=True`): uniform random crop offsets and a fair coin per image for the
    flip, drawn from a generator keyed by (seed, shard, step). Evaluation: centre crop, no
    flip. `flip` (bool [n]) is applied on the device by `prepare_batch`. The crop size
    is `crop_size`, or per step from a resolution schedule (`crop_sizes`: (first step, size)
    pairs), so the crop too is a pure function of the step. A stage smaller than `crop_size`
    sees the `crop_size` window downscaled to its size (`downscale`); a larger one, a larger
    window.
    """

    def __init__(self, records: Records, crop_size: int, *, augment: bool, flip: bool,
                 seed: int, shard_index: int,
                 crop_sizes: tuple[tuple[int, int], ...] | None = None):
        self.records = records
        self.crop_size = int(crop_size)
        self.crop_sizes = tuple(crop_sizes or ((0, self.crop_size),))
        self._first_steps = tuple(first for first, _ in self.crop_sizes)
        self.augment, self.flip = bool(augment), bool(flip)
        self.seed, self.shard_index = int(seed), int(shard_index)

    def __call__(self, step: int, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        indices = batch["index"]
        L8, ab8 = self.records.read(indices)
        size = self.crop_sizes[_stage_of(self._first_steps, step)][1]
        c = max(size, self.crop_size)  # the window cut from each record
        n, (h, w) = len(indices), self.records.image_size
        if self.augment:
            rng = _rng(_AUGMENT, self.seed, self.shard_index, step)
            top = rng.integers(0, h - c + 1, n)
            left = rng.integers(0, w - c + 1, n)
            flip = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        else:
            top, left, flip = np.full(n, (h - c) // 2), np.full(n, (w - c) // 2), np.zeros(n, bool)
        L8, ab8 = crop_windows(L8, ab8, top, left, c)
        if size < c:
            L8, ab8 = downscale(L8, ab8, size)
        return {**batch, "L": L8, "ab": ab8, "flip": flip,
                "index": np.asarray(indices, np.int32)}

    def __repr__(self) -> str:
        return (f"_ReadBatch({self.records!r}, crop_sizes={self.crop_sizes}, "
                f"augment={self.augment})")


# --------------------------------------------------------------------------------------
# On the device: a batch -> the model's inputs.
# --------------------------------------------------------------------------------------


def prepare_batch(batch: dict) -> tuple[jax.Array, jax.Array]:
    """A batch on the device -> (L in [-1, 1] [n,H,W,1], ab/110 [n,H,W,2]) float32, inside
    the jitted step.

    Normalises the uint8 records (`color.lab8_to_model`: elementwise, so it runs wherever
    the sharded batch lives, and only uint8 crosses the host-device link) and mirrors
    left-right the images whose `flip` flag is set (the augmentation `_ReadBatch` draws, done
    here because it is free on the device and costly in numpy).
    """
    l_norm, ab_norm = color.lab8_to_model(batch["L"], batch["ab"])
    if "flip" in batch:
        flip = batch["flip"][:, None, None, None]
        l_norm = jnp.where(flip, l_norm[:, :, ::-1], l_norm)
        ab_norm = jnp.where(flip, ab_norm[:, :, ::-1], ab_norm)
    return l_norm, ab_norm
