"""The colour prior over quantised ab and Zhang et al.'s class-rebalancing weights.

A colouriser trained with a plain L1 loss on natural photos learns the colours most pixels
have (skies, foliage, skin, and the desaturated browns and grays in between) and little
else: the L1 optimum of an uncertain pixel is a dull median. Zhang et al. ("Colorful Image
Colorization", 2016, section 2.2) reweight each pixel's loss by the rarity of its true
colour. The pieces, as they define them:

  bins     a and b quantised into 10-unit bins over [-110, 110): a 22 x 22 grid, of which
           8-bit sRGB reaches 265 (`jaxcolor.ab_grid`, shared with the generator's
           classification head; its names are re-exported here)
  prior    p, the fraction of the training pixels in each bin, smoothed with a Gaussian of
           sigma 5 ab units (half a bin)
  weights  w proportional to 1 / ((1 - lambda) p + lambda / Q), Q the number of bins in the
           support, lambda = 0.5; scaled so that E_p[w] = 1 (the loss keeps L1's scale)

The prior is formed from per-record histograms (`histograms`), computed once at ingestion
and stored beside the records (`records.HIST_FILE`), so the prior of exactly the records a
training run keeps after its filter is a sum over their rows, with no pass over the pixels.
Records written before the histograms existed still open: `record_histograms` computes them
on demand (one read of every record) and says so in the log.

Everything here is numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import logging

from jaxcolor.ab_grid import (AB_MIN, BIN, BINS, BINS_PER_AXIS, bin_index,  # noqa: F401
                              gamut_mask, histograms)
from jaxcolor.errors import RunError

SIGMA = 5.0  # ab units
MIX = 0.5  # lambda: the share of the uniform distribution
HIST_FILE = "ab_hist.npy"  # uint32 [count, BINS] beside a records directory's shards


class PriorError(RunError, ValueError):
    """A records directory's histogram file is damaged; the message names it."""


def record_histograms(records, chunk: int = 256) -> np.ndarray:
    """uint32 [len(records), BINS]: the stored histograms of a `Records`, or, for records
    written before ingestion stored them, computed now from the records themselves."""
    path = Path(records.directory) / HIST_FILE
    if path.is_file():
        try:
            hist = np.load(path, allow_pickle=False)
        except Exception as e:  # numpy raises ValueError/OSError/EOFError for damaged files
            raise PriorError(f"{path}: unreadable colour histograms ({e}); re-run ingestion") from None
        if hist.dtype != np.uint32 or hist.shape != (len(records), BINS):
            raise PriorError(f"{path}: {hist.dtype} {hist.shape}, expected uint32 "
                             f"{(len(records), BINS)}; re-run ingestion")
        return hist
    logging.warning("%s: no %s (records written before ingestion stored colour histograms); "
                    "computing them now from its %d records, one read of each (re-run "
                    "`jaxcolor ingest` to store them)", records.directory, HIST_FILE, len(records))
    parts = [histograms(records.read(np.arange(start, min(start + chunk, len(records))))[1])
             for start in range(0, len(records), chunk)]
    return np.concatenate(parts)


def empirical_prior(counts: np.ndarray) -> np.ndarray:
    """Summed bin counts (of the records a run keeps) -> float64 [BINS] fractions."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("colour prior: no pixels counted")
    return counts / total


def _gaussian_taps(sigma_bins: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma_bins)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma_bins) ** 2)
    return taps / taps.sum()


def smooth(prior: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """The prior blurred with a Gaussian of `sigma` ab units over the bin grid (separable,
    zero outside the grid), renormalised to sum to 1."""
    grid = np.asarray(prior, np.float64).reshape(BINS_PER_AXIS, BINS_PER_AXIS)
    if sigma > 0:
        taps = _gaussian_taps(sigma / BIN)
        for axis in (0, 1):
            grid = np.apply_along_axis(lambda v: np.convolve(v, taps, mode="same"), axis, grid)
    flat = grid.ravel()
    return flat / flat.sum()


def rebalancing_weights(prior: np.ndarray, *, sigma: float = SIGMA,
                        mix: float = MIX) -> np.ndarray:
    """Zhang et al.'s per-bin loss weights (float32 [BINS]) from an empirical prior.

    The uniform share is spread over the support: the in-gamut bins and any bin the data
    itself reaches. No weight exceeds the rarest supported bin's: a bin outside the support
    (or, with `mix=0`, one the smoothed prior never reaches) never holds a training pixel,
    and gets that largest weight rather than an infinite one.
    """
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"rebalancing mix (lambda) must be in [0, 1], got {mix}")
    smoothed = smooth(prior, sigma)
    support = gamut_mask() | (np.asarray(prior) > 0)
    uniform = np.where(support, 1.0 / support.sum(), 0.0)
    mixed = (1.0 - mix) * smoothed + mix * uniform
    floor = mixed[support & (mixed > 0)].min()  # the rarest reachable colour's share
    weights = 1.0 / np.maximum(mixed, floor)
    weights /= float(np.sum(smoothed * weights))  # E_p[w] = 1 under the smoothed prior
    return weights.astype(np.float32)


def summary(weights: np.ndarray, prior: np.ndarray) -> str:
    """One log line: how strongly the weights favour rare colours."""
    occupied = np.asarray(prior) > 0
    w = np.asarray(weights)[occupied]
    return (f"{int(occupied.sum())} of {BINS} ab bins occupied; weights over them "
            f"{w.min():.2f}..{w.max():.2f} (mean under the prior 1)")
