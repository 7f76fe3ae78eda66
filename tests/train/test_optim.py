"""Optimisers from config: learning-rate schedules, warm-up, clipping, the logged rate."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxcolor.train import optim


def _cfg(**changes) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict({"lr": 1e-3, "b1": 0.5, "b2": 0.999, "weight_decay": 0.0,
                                     "schedule": "constant", "warmup_steps": 0,
                                     "clip_grad_norm": 0.0})
    cfg.update(changes)
    return cfg


def _rates(cfg, total, steps):
    schedule = optim.learning_rate_schedule(cfg, field="g", total_updates=total)
    return np.array([float(schedule(s)) for s in steps])


def test_constant_schedule():
    np.testing.assert_allclose(_rates(_cfg(), 100, [0, 1, 50, 99, 100]), 1e-3, rtol=1e-6)


def test_linear_decay_falls_from_lr_to_zero_at_total_updates():
    rates = _rates(_cfg(schedule="linear_decay"), 100, [0, 25, 50, 100, 150])
    np.testing.assert_allclose(rates, [1e-3, 0.75e-3, 0.5e-3, 0.0, 0.0], rtol=1e-6, atol=1e-12)


def test_warmup_ramps_from_zero_then_decays_to_zero_at_total_updates():
    cfg = _cfg(schedule="linear_decay", warmup_steps=10)
    rates = _rates(cfg, 110, [0, 5, 10, 60, 110])
    np.testing.assert_allclose(rates, [0.0, 0.5e-3, 1e-3, 0.5e-3, 0.0], rtol=1e-6, atol=1e-12)


def test_cosine_schedule_ends_at_zero():
    rates = _rates(_cfg(schedule="cosine"), 100, [0, 50, 100])
    np.testing.assert_allclose(rates, [1e-3, 0.5e-3, 0.0], rtol=1e-6, atol=1e-12)


def test_unknown_schedule_names_the_field():
    with pytest.raises(ValueError, match=r"config\.d\.schedule"):
        optim.learning_rate_schedule(_cfg(schedule="step"), field="d", total_updates=10)


def _updates(tx, grads_sequence):
    params = {"w": jnp.zeros(3)}
    state, out = tx.init(params), []
    for g in grads_sequence:
        updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
        out.append(np.asarray(updates["w"]))
    return out, state


def test_gradients_above_the_clip_norm_are_rescaled_to_it():
    big, small = np.array([30.0, -40.0, 0.0]), np.array([0.1, 0.2, -0.1])  # norms 50, <1
    clipped, _ = _updates(optim.make_optimizer(_cfg(clip_grad_norm=1.0), field="g",
                                               total_updates=10), [big, small])
    # Adam is scale invariant per step, so compare the second step, whose moments mix both.
    by_hand, _ = _updates(optim.make_optimizer(_cfg(), field="g", total_updates=10),
                          [big / 50.0, small])
    unclipped, _ = _updates(optim.make_optimizer(_cfg(), field="g", total_updates=10),
                            [big, small])
    np.testing.assert_allclose(clipped[1], by_hand[1], rtol=1e-5)
    assert not np.allclose(clipped[1], unclipped[1], rtol=1e-2)


def test_weight_decay_switches_to_adamw():
    tx = optim.make_optimizer(_cfg(weight_decay=0.1), field="g", total_updates=10)
    params = {"w": jnp.ones(3)}
    updates, _ = tx.update({"w": jnp.zeros(3)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -1e-3 * 0.1, rtol=1e-5)  # decay alone


def test_logged_learning_rate_is_the_one_the_last_update_used():
    tx = optim.make_optimizer(_cfg(schedule="linear_decay"), field="g", total_updates=4)
    _, state = _updates(tx, [np.ones(3)] * 2)  # updates at counts 0 and 1
    assert float(optim.current_learning_rate(state)) == pytest.approx(0.75e-3)
