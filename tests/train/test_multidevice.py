"""Data parallelism: 4 (fake CPU) devices train like 1 on the same global batch, and a
global batch that does not split over the devices is refused before anything compiles.

The 4-device side runs in its own interpreter (XLA_FLAGS must be set before jax is
imported) while this process computes the 1-device reference from the same initial state.

Each kind of step is compared once from the common initial state, not as a chain: Adam
turns gradients at float-noise level (parameters BatchNorm makes the loss nearly invariant
to) into updates up to the learning rate, so two correct runs that sum in different orders
drift apart by ~1% per step after the first, and most in the GAN phase (lambda_L1 = 100).
"""

import os
import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxcolor import sharding
from jaxcolor.data import pipeline
from tests.train.helpers import build_run, fixed_batch, run_steps
from tests.support import REPO, assert_trees_equal, tiny_config, to_host

PHASES = ("pretrain", "gan")  # the GAN step also updates D
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}

FOUR_DEVICES = r"""
import pickle, sys
sys.path.insert(0, ".")  # the repository root: the tests package
import jax
from tests.train.helpers import build_run, run_steps
from tests.support import tiny_config, to_host
from jaxcolor import sharding
from jaxcolor.data import pipeline
from jaxcolor.train import loop, setup

records_dir, work = sys.argv[1], sys.argv[2]
PHASES = sys.argv[3].split(",")
assert jax.device_count() == 4, jax.devices()

# A global batch of 6 cannot be split over 4 devices: refused before the state is built.
def must_not_run(*args, **kwargs):
    raise AssertionError("init_state reached: the batch size was not checked first")

setup.Setup.init_state = must_not_run
config = tiny_config(records_dir)
config.batch_size = 6
try:
    loop.train_and_evaluate(config, work + "/batch6")
except Exception as e:
    print(f"{type(e).__name__}: {e}")

with open(work + "/in.pkl", "rb") as f:
    initial, batch = pickle.load(f)
mesh = sharding.make_mesh()
run, state = build_run(tiny_config(records_dir), mesh, initial=initial)
global_batch = pipeline.make_global_batch(batch, mesh)
print("batch devices:", len(global_batch["L"].sharding.device_set))
results = {}
for phase in PHASES:
    state = run.place(initial)
    state, history = run_steps(run.steps, state, global_batch, (phase,))
    results[phase] = (to_host(state), history)
print("state devices:", len(jax.tree.leaves(state)[0].sharding.device_set))
with open(work + "/out.pkl", "wb") as f:
    pickle.dump(results, f)
"""


def test_four_devices_train_like_one(records_dir, compile_cache, tmp_path):
    config = tiny_config(records_dir)
    one_device = sharding.make_mesh(jax.devices()[:1])
    run, state = build_run(config, one_device)
    initial, batch = to_host(state), fixed_batch(records_dir)
    with open(tmp_path / "in.pkl", "wb") as f:
        pickle.dump((initial, batch), f)

    child = subprocess.Popen(
        [sys.executable, "-c", FOUR_DEVICES, str(records_dir), str(tmp_path), ",".join(PHASES)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
             "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(compile_cache)})
    try:  # the reference, while the child compiles
        reference = {}
        global_batch = pipeline.make_global_batch(batch, one_device)
        for phase in PHASES:
            state, history = run_steps(run.steps, run.place(initial), global_batch, (phase,))
            reference[phase] = (to_host(state), history)
        out, err = child.communicate(timeout=600)
    finally:
        child.kill()
    assert child.returncode == 0, err[-4000:]

    assert "PipelineError: global_batch=6: not divisible by the 4 devices" in out, out
    assert "batch devices: 4" in out and "state devices: 4" in out, out
    with open(tmp_path / "out.pkl", "rb") as f:
        four = pickle.load(f)
    for phase in PHASES:
        (one_state, one_metrics), (four_state, four_metrics) = reference[phase], four[phase]
        for key, value in one_metrics[0].items():
            # Losses and logits agree to ~1e-7. Gradients of an untrained BatchNorm network
            # move by ~1e-4 with the summation order alone (the same batch permuted on one
            # device does it too): flax's BatchNorm computes the variance as E[x^2] - E[x]^2.
            rel = 1e-3 if key.endswith("grad_norm") else 1e-4
            assert four_metrics[0][key] == pytest.approx(value, rel=rel, abs=1e-5), (phase, key)
        # BatchNorm statistics of the global batch, not of each device's quarter of it.
        assert_trees_equal(one_state.g_batch_stats, four_state.g_batch_stats, **TOLERANCE)
        assert_trees_equal(one_state.d_batch_stats, four_state.d_batch_stats, **TOLERANCE)
        assert_trees_equal(one_state.g_ema_batch_stats, four_state.g_ema_batch_stats,
                           **TOLERANCE)
        params = [(one_state.g_params, four_state.g_params),
                  (one_state.d_params, four_state.d_params),
                  (one_state.g_ema_params, four_state.g_ema_params)]
        assert _mismatches(params) <= 1e-4 * _size(params), phase
        assert _mismatches([(initial.g_params, one_state.g_params)]) > 1e4  # the decoder moved


def _mismatches(pairs) -> int:
    """Elements outside TOLERANCE. Adam's first update is about lr * sign(gradient), so an
    element whose gradient is at the level of summation noise may move either way: ~5 per
    million here; BatchNorm statistics of one device's quarter batch would move millions."""
    return sum(int(np.sum(~np.isclose(a, b, **TOLERANCE)))
               for one, four in pairs for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(four)))


def _size(pairs) -> int:
    return sum(np.size(a) for one, _ in pairs for a in jax.tree.leaves(one))
