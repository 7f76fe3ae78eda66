"""The colour prior: per-record ab histograms (stored at ingestion, computed on demand for
older records), the sRGB gamut's bins, smoothing, and Zhang et al.'s rebalancing weights."""

import logging

import numpy as np
import pytest

from jaxcolor import color
from jaxcolor.data import prior, records


def _ab8(a, b, shape=(1, 2, 2)):
    """uint8 ab codes [n, H, W, 2] of constant Lab a, b."""
    ab = np.empty(shape + (2,), np.uint8)
    ab[..., 0], ab[..., 1] = a + 128, b + 128
    return ab


def test_histograms_count_each_records_pixels_in_their_bins():
    ab = np.concatenate([_ab8(0, 0), _ab8(-110, 105), _ab8(9, -1)])
    ab[2, 0, 0] = (128 + 10, 128 - 11)  # one pixel across both bin edges
    hist = prior.histograms(ab)
    assert hist.shape == (3, prior.BINS) and hist.dtype == np.uint32
    assert hist.sum(axis=1).tolist() == [4, 4, 4]
    # Bin of (a, b): ((a + 110) // 10) * 22 + (b + 110) // 10.
    assert hist[0, 11 * 22 + 11] == 4
    assert hist[1, 0 * 22 + 21] == 4
    assert hist[2, 11 * 22 + 10] == 3 and hist[2, 12 * 22 + 9] == 1
    extreme = prior.histograms(np.stack([np.full((1, 1), 0), np.full((1, 1), 255)], -1)
                               .astype(np.uint8)[None])
    assert extreme[0, 0 * 22 + 21] == 1  # a = -128, b = 127: clipped into the edge bins


def test_bin_index_is_the_same_formula_in_numpy_and_jax():
    import jax.numpy as jnp

    a = np.arange(-128, 128)
    b = a[::-1].copy()
    np.testing.assert_array_equal(prior.bin_index(a, b),
                                  np.asarray(prior.bin_index(jnp.asarray(a), jnp.asarray(b),
                                                             xp=jnp)))


def test_gamut_mask_holds_every_srgb_colour_and_not_the_impossible_corners():
    mask = prior.gamut_mask()
    assert 240 < mask.sum() < 320  # Zhang et al. count 313 with their binning
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20_000, 3), np.uint8)
    _, ab8 = color.encode_lab8(color.rgb_to_lab_np(rgb))
    assert mask[prior.histograms(ab8[None])[0] > 0].all()
    grid = mask.reshape(22, 22)
    assert not grid[0, 0] and not grid[21, 21]  # a, b both -110 or both +100: no sRGB colour
    assert grid[11, 11]  # gray


def test_smoothing_keeps_the_mass_and_spreads_a_peak_to_its_neighbours():
    peak = np.zeros(prior.BINS)
    peak[11 * 22 + 11] = 1.0
    smoothed = prior.smooth(peak, sigma=5.0).reshape(22, 22)
    assert smoothed.sum() == pytest.approx(1.0)
    assert smoothed[11, 11] > smoothed[11, 12] > smoothed[11, 13] > 0
    assert smoothed[11, 12] == pytest.approx(smoothed[12, 11])
    np.testing.assert_allclose(prior.smooth(peak, sigma=0.0), peak)


def _skewed_prior():
    counts = np.zeros(prior.BINS)
    counts[11 * 22 + 11] = 900  # grays dominate
    counts[11 * 22 + 13] = 90
    counts[17 * 22 + 15] = 10  # a rare red
    return prior.empirical_prior(counts)


def test_weights_have_mean_one_under_the_prior_and_favour_rare_colours():
    p = _skewed_prior()
    w = prior.rebalancing_weights(p)
    assert w.dtype == np.float32 and w.shape == (prior.BINS,)
    assert float(np.sum(prior.smooth(p) * w)) == pytest.approx(1.0, rel=1e-5)
    gray, common, rare = w[11 * 22 + 11], w[11 * 22 + 13], w[17 * 22 + 15]
    assert gray < common < rare
    assert rare / gray > 10


def test_mix_one_is_uniform_and_mix_zero_is_the_inverse_prior():
    p = _skewed_prior()
    support = prior.gamut_mask() | (p > 0)
    uniform = prior.rebalancing_weights(p, mix=1.0)
    np.testing.assert_allclose(uniform[support], uniform[support][0], rtol=1e-6)
    smoothed = prior.smooth(p)
    inverse = prior.rebalancing_weights(p, mix=0.0, sigma=5.0)
    occupied = smoothed > 1e-3
    ratio = inverse[occupied] * smoothed[occupied]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)  # w proportional to 1 / p
    with pytest.raises(ValueError, match="lambda"):
        prior.rebalancing_weights(p, mix=1.5)


def _write(directory, ab8):
    L8 = np.full(ab8.shape[:-1], 128, np.uint8)
    with records.RecordsWriter(directory, *ab8.shape[1:3]) as writer:
        writer.add(L8[:2], ab8[:2])
        writer.add(L8[2:], ab8[2:])
    return records.Records(directory)


def test_ingestion_stores_each_records_histogram(tmp_path):
    rng = np.random.default_rng(1)
    ab8 = rng.integers(60, 200, (5, 6, 6, 2), np.uint8)
    recs = _write(tmp_path / "recs", ab8)
    assert (tmp_path / "recs" / prior.HIST_FILE).is_file()
    np.testing.assert_array_equal(recs.ab_histograms(), prior.histograms(ab8))


def test_records_written_before_histograms_get_them_computed_with_a_log_line(tmp_path, caplog):
    rng = np.random.default_rng(2)
    ab8 = rng.integers(60, 200, (5, 6, 6, 2), np.uint8)
    recs = _write(tmp_path / "old", ab8)
    (tmp_path / "old" / prior.HIST_FILE).unlink()  # as a set ingested before this change
    with caplog.at_level(logging.WARNING):
        hist = records.Records(tmp_path / "old").ab_histograms()
    np.testing.assert_array_equal(hist, prior.histograms(ab8))
    assert any(prior.HIST_FILE in r.getMessage() and "re-run" in r.getMessage()
               for r in caplog.records)
    assert len(recs) == 5


@pytest.mark.parametrize("damage", ["truncate", "shape"])
def test_a_damaged_histogram_file_is_named(tmp_path, damage):
    ab8 = np.full((3, 4, 4, 2), 128, np.uint8)
    recs = _write(tmp_path / "recs", ab8)
    path = tmp_path / "recs" / prior.HIST_FILE
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:40])
    else:
        np.save(path, np.zeros((2, prior.BINS), np.uint32))
    with pytest.raises(prior.PriorError, match=prior.HIST_FILE):
        recs.ab_histograms()
