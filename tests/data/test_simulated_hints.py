"""Hints simulated from the truth (Zhang et al. 2017): counts, patches, their colours."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxcolor.data import simulated_hints as sh


def _draws(cfg, batches=40, b=32, size=24):
    ab = jnp.zeros((b, size, size, 2))
    return [sh.simulate(jax.random.key(s), ab, cfg) for s in range(batches)]


def test_counts_are_geometric_capped_and_some_batches_have_none():
    cfg = sh.HintConfig(none_share=0.25)
    draws = _draws(cfg)
    counts = np.stack([np.asarray(n) for _, n in draws])  # [batches, B]
    empty = (counts == 0).all(axis=1)
    assert 0.1 < empty.mean() < 0.45  # whole batches without hints, about a quarter
    kept = counts[~empty]
    assert kept.max() <= cfg.max_points
    assert 5.0 < kept.mean() < 8.0  # geometric(1/8) on 0, 1, ...: mean 7, capped at 24
    assert 0.08 < (kept == 0).mean() < 0.18  # P(0) = 1/8 within a hinted batch


def test_each_patch_carries_the_mean_true_colour_and_nothing_else_is_hinted():
    rng = np.random.default_rng(0)
    coarse = rng.uniform(-0.5, 0.5, (8, 4, 4, 2))  # flat 8x8 regions of colour
    ab = jnp.asarray(np.kron(coarse, np.ones((1, 8, 8, 1))), jnp.float32)
    hint, count = sh.simulate(jax.random.key(1), ab, sh.HintConfig(none_share=0.0,
                                                                   max_patch=1))
    hint, ab = np.asarray(hint), np.asarray(ab)
    mask = hint[..., 2] > 0
    assert np.array_equal(np.unique(hint[..., 2]), [0.0, 1.0])
    np.testing.assert_allclose(hint[..., :2][mask], ab[mask], atol=1e-4)  # 1 px: its colour (float32 sums)
    assert (hint[..., :2][~mask] == 0).all()  # the branch relies on zeros where unhinted
    assert (mask.sum(axis=(1, 2)) <= np.asarray(count)).all()
    # A 3x3 patch inside one flat region carries that region's colour.
    wide, _ = sh.simulate(jax.random.key(2), jnp.asarray(ab), sh.HintConfig(none_share=0.0))
    assert float(np.asarray(wide)[..., 2].mean()) > float(mask.mean())


def test_the_same_key_draws_the_same_hints():
    ab = jax.random.uniform(jax.random.key(0), (4, 32, 32, 2)) - 0.5
    a, _ = sh.simulate(jax.random.key(7), ab, sh.HintConfig())
    b, _ = jax.jit(sh.simulate, static_argnums=2)(jax.random.key(7), ab, sh.HintConfig())
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
