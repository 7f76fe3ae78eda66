"""The compiled steps on one fixed batch: L1 falls, the encoder freeze holds, EMA follows,
and each phase's step updates exactly the model it should."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcolor.data import pipeline
from tests.train.helpers import build_run, fixed_batch
from tests.support import EMA_DECAY, ENCODER_FREEZE_STEPS, tiny_config, to_host


@pytest.fixture(scope="module")
def run(records_dir, compile_cache):
    """Steps compiled once for the module; tests start from copies of one initial state."""
    setup, state = build_run(tiny_config(records_dir))
    batch = pipeline.make_global_batch(fixed_batch(records_dir), setup.mesh)
    return {"initial": to_host(state), "steps": setup.steps, "batch": batch, "setup": setup}


def _fresh(run):
    return run["setup"].place(run["initial"])


def _changed(before, after) -> list[bool]:
    return [not np.array_equal(a, b) for a, b in
            zip(jax.tree.leaves(before), jax.tree.leaves(after))]


def test_l1_falls_when_pretraining_on_one_batch(run):
    state, losses = _fresh(run), []
    for _ in range(15):
        state, metrics = run["steps"].pretrain(state, run["batch"])
        losses.append(float(metrics["g/l1"]))
    assert np.all(np.isfinite(losses))
    assert min(losses[-3:]) < 0.5 * losses[0], losses
    assert int(state.step) == 15


def test_encoder_is_frozen_for_the_first_steps_and_decoder_trains(run):
    initial = run["initial"]
    state = _fresh(run)
    for _ in range(ENCODER_FREEZE_STEPS):
        state, _ = run["steps"].pretrain(state, run["batch"])
    frozen = to_host(state.g_params)
    # Bitwise unchanged, although G uses AdamW (weight decay) in the tiny config.
    assert not any(_changed(initial.g_params["encoder"], frozen["encoder"]))
    assert all(_changed(initial.g_params["decoder"], frozen["decoder"]))
    state, _ = run["steps"].pretrain(state, run["batch"])  # step == freeze steps: thawed
    assert any(_changed(frozen["encoder"], to_host(state.g_params)["encoder"]))


def test_ema_is_the_decay_weighted_average_of_the_parameters_seen(run):
    """Debiased: the first update copies the parameters and batch statistics (the initial
    ones get no share); the second weights them decay : 1."""
    pairs = (("g_ema_params", "g_params"), ("g_ema_batch_stats", "g_batch_stats"))
    state = _fresh(run)
    state, _ = run["steps"].pretrain(state, run["batch"])
    first = to_host(state)
    for ema, live in pairs:
        jax.tree.map(np.testing.assert_array_equal, getattr(first, ema), getattr(first, live))
    state, _ = run["steps"].pretrain(state, run["batch"])
    second = to_host(state)
    for ema, live in pairs:
        expected = jax.tree.map(lambda x1, x2: (EMA_DECAY * x1 + x2) / (1 + EMA_DECAY),
                                getattr(first, live), getattr(second, live))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     getattr(second, ema), expected)
        assert any(_changed(getattr(second, ema), getattr(second, live)))  # lagging, not a copy


def test_d_step_trains_only_the_discriminator(run):
    state = _fresh(run)
    state, metrics = run["steps"].d_pretrain(state, run["batch"])
    after = to_host(state)
    initial = run["initial"]
    assert not any(_changed(initial.g_params, after.g_params))
    assert not any(_changed(initial.g_batch_stats, after.g_batch_stats))  # G in eval mode
    assert all(_changed(initial.d_params, after.d_params))
    assert set(metrics) >= {"d/loss", "d/real_logit", "d/fake_logit", "d/grad_norm", "d/lr"}
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert int(after.step) == 1


def test_gan_step_trains_both_models_and_reports_every_term(run):
    state = _fresh(run)
    state, metrics = run["steps"].gan(state, run["batch"])
    after = to_host(state)
    initial = run["initial"]
    assert all(_changed(initial.d_params, after.d_params))
    assert all(_changed(initial.g_params["decoder"], after.g_params["decoder"]))
    assert set(metrics) >= {"g/loss", "g/adv", "g/l1", "g/lr", "g/grad_norm", "d/loss",
                            "d/real_logit", "d/fake_logit"}
    m = {k: float(v) for k, v in metrics.items()}
    assert all(np.isfinite(list(m.values())))
    lambda_l1 = tiny_config(None).gan.lambda_l1
    assert m["g/loss"] == pytest.approx(m["g/adv"] + lambda_l1 * m["g/l1"], rel=1e-5)


def test_eval_step_gives_per_image_metrics(run):
    out = run["steps"].evaluate(_fresh(run), run["batch"])
    batch = run["batch"]["L"].shape[0]
    for key in ("ab_mae", "psnr", "psnr_gray", "ssim", "ab_auc", "cf", "cf_true"):
        assert out[key].shape == (batch,), key
        assert np.all(np.isfinite(np.asarray(out[key]))), key
    assert out["ab_pred"].shape == run["batch"]["ab"].shape
    assert float(jnp.max(jnp.abs(out["ab_pred"]))) <= 1.0 + 1e-6  # normalised ab


def test_rebalanced_and_colourfulness_terms_make_gs_loss_and_are_reported(records_dir,
                                                                           compile_cache):
    """With both switches on, the pretraining loss is the rebalanced L1 plus lambda_cf times
    the colourfulness gap, and every term is a metric (TensorBoard's train/g/*)."""
    from jaxcolor.data import prior
    from jaxcolor.data.records import Records

    config = tiny_config(records_dir)
    config.loss.rebalance, config.loss.lambda_cf = True, 0.5
    with pytest.raises(ValueError, match="rebalancing weights"):
        build_run(config)
    records = Records(records_dir)
    weights = prior.rebalancing_weights(prior.empirical_prior(
        records.ab_histograms()[records.split("train")].sum(0)))
    setup, state = build_run_with_weights(config, weights)
    batch = pipeline.make_global_batch(fixed_batch(records_dir), setup.mesh)
    state, metrics = setup.steps.pretrain(state, batch)
    m = {k: float(v) for k, v in metrics.items()}
    assert {"g/l1", "g/l1_rebal", "g/cf_gap", "g/loss"} <= set(m)
    assert all(np.isfinite(list(m.values())))
    assert m["g/loss"] == pytest.approx(m["g/l1_rebal"] + 0.5 * m["g/cf_gap"], rel=1e-5)
    assert m["g/l1_rebal"] != pytest.approx(m["g/l1"], rel=1e-3)  # the weights do weigh


def test_the_bins_head_trains_on_its_cross_entropy_and_reports_l1(records_dir, compile_cache):
    """config.model.colour_head = "bins": the pretraining loss is the soft-encoded
    cross-entropy (falling on one batch), L1 of the annealed mean is still reported (the L1
    pick reads it) and evaluation measures the annealed mean."""
    config = tiny_config(records_dir)
    config.model.colour_head = "bins"
    setup, state = build_run(config)
    batch = pipeline.make_global_batch(fixed_batch(records_dir), setup.mesh)
    history = []
    for _ in range(20):
        state, metrics = setup.steps.pretrain(state, batch)
        history.append({k: float(v) for k, v in metrics.items()})
    assert {"g/l1", "g/ce", "g/loss"} <= set(history[0])
    assert all(h["g/loss"] == h["g/ce"] for h in history)
    assert history[0]["g/ce"] == pytest.approx(np.log(265), rel=0.2)  # near uniform at first
    ce = [h["g/ce"] for h in history]
    assert ce[-1] < ce[0] - 0.2 and max(ce[-5:]) < min(ce[:5]), ce  # a steady fall
    out = setup.steps.evaluate(state, batch)
    assert np.all(np.isfinite(np.asarray(out["psnr"])))
    assert np.asarray(out["ab_pred"]).shape[-1] == 2


def build_run_with_weights(config, weights):
    from jaxcolor.train.setup import setup as make_setup

    run = make_setup(config, ab_weights=weights)
    return run, run.init_state()


def test_an_unknown_best_metric_is_refused_before_anything_compiles(records_dir):
    from jaxcolor.errors import UsageError
    from jaxcolor.train.setup import setup as make_setup

    config = tiny_config(records_dir)
    config.best_metric = "fid"
    with pytest.raises(UsageError, match="config.best_metric: unknown 'fid'"):
        make_setup(config)


def test_a_generator_with_hints_learns_from_hints_simulated_in_the_step(records_dir,
                                                                        compile_cache):
    """config.model.hints: the steps draw hints from the truth (the same for a step whatever
    the state), report them, and train the hint branch; evaluation stays automatic."""
    config = tiny_config(records_dir)
    config.model.hints = True
    config.hints.none_share = 0.0
    setup, state = build_run(config)
    batch = pipeline.make_global_batch(fixed_batch(records_dir), setup.mesh)
    branch = to_host(state.g_params)["hints"]
    assert all(not np.any(x) for x in jax.tree.leaves(branch))  # zero at initialisation
    state, metrics = setup.steps.pretrain(state, batch)
    m = {k: float(v) for k, v in metrics.items()}
    assert m["g/hint_points"] > 0 and 0 < m["g/hinted_share"] < 0.5
    state, gan_metrics = setup.steps.gan(state, batch)
    assert float(gan_metrics["g/hint_points"]) > 0
    assert any(np.any(x) for x in jax.tree.leaves(to_host(state.g_params)["hints"]))
    out = setup.steps.evaluate(state, batch)
    assert np.all(np.isfinite(np.asarray(out["psnr"])))


def test_training_the_hint_branch_alone_keeps_the_automatic_model_exactly(records_dir,
                                                                          compile_cache):
    """config.g.trainable = "hints": only the branch's weights move (on G in eval mode: no
    BatchNorm statistic moves either), and the branch has no bias, so the model without
    hints computes exactly what it did. config.model.chroma: G is trained and measured on
    its output times the scale, the colours it delivers."""
    from jaxcolor.data import batches

    config = tiny_config(records_dir)
    config.model.hints, config.g.trainable, config.model.chroma = True, "hints", 2.0
    config.model.hint_scales, config.model.hint_encoder = (4, 2, 1), False
    config.hints.none_share = 0.0
    setup, state = build_run(config)
    batch = pipeline.make_global_batch(fixed_batch(records_dir), setup.mesh)
    before = to_host(state)
    for _ in range(ENCODER_FREEZE_STEPS + 1):  # past the encoder's freeze: still frozen
        state, _ = setup.steps.pretrain(state, batch)
    after = to_host(state)
    assert sorted(after.g_params["hints"]["proj"]) == [0, 1, 2]
    assert all(_changed(before.g_params["hints"], after.g_params["hints"]))
    rest = [k for k in before.g_params if k != "hints"]
    assert not any(_changed([before.g_params[k] for k in rest],
                            [after.g_params[k] for k in rest]))
    assert not any(_changed(before.g_batch_stats, after.g_batch_stats))

    l_norm, _ = batches.prepare_batch(batch)
    g = setup.defs.generator(state.g_params, state.g_batch_stats, train=False)
    evaluated = setup.steps.evaluate(state, batch)["ab_pred"]
    np.testing.assert_allclose(evaluated, 2.0 * np.asarray(g(l_norm)), rtol=1e-5, atol=1e-6)
    untrained = setup.defs.generator(setup.place(before).g_params, state.g_batch_stats,
                                     train=False)
    np.testing.assert_array_equal(np.asarray(g(l_norm)), np.asarray(untrained(l_norm)))


def test_the_trainable_choice_is_checked(records_dir):
    from jaxcolor.errors import UsageError
    from jaxcolor.train.steps import StepConfig

    config = tiny_config(records_dir)
    config.g.trainable = "decoder"
    with pytest.raises(UsageError, match=r"config.g.trainable: 'decoder'"):
        StepConfig.from_config(config)
    config.g.trainable = "hints"  # a G without hint inputs has no branch to train
    with pytest.raises(UsageError, match=r"needs a G with hint inputs"):
        StepConfig.from_config(config)


def test_training_measures_the_colours_the_colorizer_delivers_with_the_chroma_exponent():
    """`delivered` (the loss's and evaluate's colours) is G's output scaled as the Colorizer
    scales it (`color.scale_chroma`), in the model's normalised units."""
    from types import SimpleNamespace

    from jaxcolor import color
    from jaxcolor.train.steps import delivered

    ab_norm = jax.random.uniform(jax.random.key(0), (2, 8, 8, 2), minval=-0.5, maxval=0.5)
    ctx = SimpleNamespace(cfg=SimpleNamespace(chroma=1.8, chroma_gamma=1.5))
    np.testing.assert_allclose(
        color.denormalize_ab(np.asarray(delivered(ctx, ab_norm))),
        color.scale_chroma(color.denormalize_ab(np.asarray(ab_norm)), 1.8, 1.5, xp=np),
        rtol=1e-4, atol=1e-3)
    ctx.cfg.chroma_gamma = 1.0
    np.testing.assert_allclose(delivered(ctx, ab_norm), 1.8 * ab_norm, rtol=1e-6)
