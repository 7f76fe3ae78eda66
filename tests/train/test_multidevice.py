"""Data parallelism: 4 (fake CPU) devices train exactly like 1 on the same global batch, and
a global batch that does not split over the devices is refused before anything compiles.

The 4-device side runs in its own interpreter (XLA_FLAGS must be set before jax is
imported) while this process computes the 1-device reference from the same initial state.
"""

import os
import pickle
import subprocess
import sys

import jax

from helpers import REPO, assert_trees_equal, build_run, fixed_batch, run_steps, tiny_config, to_host
from jaxcolor.data import pipeline
from jaxcolor.train import mesh as mesh_lib

FOUR_DEVICES = r"""
import pickle, sys
sys.path.insert(0, "tests/train")
import jax
from helpers import build_run, run_steps, tiny_config, to_host
from jaxcolor.data import pipeline
from jaxcolor.train import build, loop
from jaxcolor.train import mesh as mesh_lib

records_dir, work = sys.argv[1], sys.argv[2]
assert jax.device_count() == 4, jax.devices()

# A global batch of 6 cannot be split over 4 devices: refused before the state is built.
def must_not_run(*args, **kwargs):
    raise AssertionError("create_state reached: the batch size was not checked first")

build.create_state = must_not_run
config = tiny_config(records_dir)
config.batch_size = 6
try:
    loop.train_and_evaluate(config, work + "/batch6")
except Exception as e:
    print(f"{type(e).__name__}: {e}")

with open(work + "/in.pkl", "rb") as f:
    initial, batch = pickle.load(f)
mesh = mesh_lib.make_mesh()
_, state, steps = build_run(tiny_config(records_dir), mesh, initial=initial)
global_batch = pipeline.make_global_batch(batch, mesh)
print("batch devices:", len(global_batch["L"].sharding.device_set))
state, history = run_steps(steps, state, global_batch)
print("state devices:", len(jax.tree.leaves(state)[0].sharding.device_set))
with open(work + "/out.pkl", "wb") as f:
    pickle.dump((to_host(state), history), f)
"""


def test_four_devices_train_like_one(records_dir, compile_cache, tmp_path):
    config = tiny_config(records_dir)
    one_device = mesh_lib.make_mesh(jax.devices()[:1])
    _, state, steps = build_run(config, one_device)
    batch = fixed_batch(records_dir)
    with open(tmp_path / "in.pkl", "wb") as f:
        pickle.dump((to_host(state), batch), f)

    child = subprocess.Popen(
        [sys.executable, "-c", FOUR_DEVICES, str(records_dir), str(tmp_path)], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
             "JAX_PLATFORMS": "cpu"})
    try:  # the reference, while the child compiles
        state, history = run_steps(steps, state, pipeline.make_global_batch(batch, one_device))
        reference = to_host(state)
        out, err = child.communicate(timeout=600)
    finally:
        child.kill()
    assert child.returncode == 0, err[-4000:]

    assert "PipelineError: global_batch=6: not divisible by the 4 devices" in out, out
    assert "batch devices: 4" in out and "state devices: 4" in out, out
    with open(tmp_path / "out.pkl", "rb") as f:
        four, four_history = pickle.load(f)
    assert len(four_history) == len(history)
    for step, (m1, m4) in enumerate(zip(history, four_history)):
        assert m1.keys() == m4.keys()
        for key in m1:
            assert abs(m1[key] - m4[key]) <= 1e-5 + 1e-4 * abs(m1[key]), (step, key, m1, m4)
    assert_trees_equal(reference, four, rtol=1e-4, atol=1e-5)
