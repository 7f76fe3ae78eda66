"""`train.setup.setup`: what a run builds before its first step, computing nothing.

The loop, these tests and the benchmarks all build a run through it; the model definitions
come from abstract models outside any trace, so two setups of one config share compiled
programs, and a fresh state matches the restore target leaf for leaf.
"""

import jax
import numpy as np
import pytest
from jax import monitoring

from jaxcolor.errors import UsageError
from jaxcolor.train import setup as setup_lib
from jaxcolor.train import state as state_lib
from tests.support import assert_trees_equal, tiny_config

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def compiles():
    """A list that grows by one entry for every XLA compilation while the test runs."""
    seen = []

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            seen.append(duration)

    monitoring.register_event_duration_secs_listener(listener)
    yield seen
    monitoring.unregister_event_duration_listener(listener)


def test_setup_traces_but_compiles_nothing(records_dir, compiles):
    run = setup_lib.setup(tiny_config(records_dir))
    assert compiles == []
    assert isinstance(run.defs, state_lib.ModelDefs)
    leaves = jax.tree.leaves(run.abstract_state)
    assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)
    assert all(x.sharding == run.replicated for x in leaves)
    phases = tiny_config(records_dir).phases
    assert run.schedule.total == (phases.pretrain_steps + phases.d_pretrain_steps
                                  + phases.gan_steps)


def test_two_setups_of_one_config_share_their_graph_definitions(records_dir):
    """Equal (hashable) graph definitions: jit caches steps and inference forwards by them."""
    first, second = (setup_lib.setup(tiny_config(records_dir)) for _ in range(2))
    assert first.defs == second.defs and hash(first.defs) == hash(second.defs)
    assert first.defs.g_train != first.defs.g_eval  # BatchNorm mode is part of the structure


def test_a_fresh_state_matches_the_restore_target(records_dir, compile_cache):
    run = setup_lib.setup(tiny_config(records_dir))
    state = run.init_state()
    fresh, target = jax.tree_util.tree_structure(state), jax.tree_util.tree_structure(
        run.abstract_state)
    assert fresh == target
    for x, t in zip(jax.tree.leaves(state), jax.tree.leaves(run.abstract_state)):
        assert x.shape == t.shape and x.dtype == t.dtype and x.sharding == t.sharding
    assert int(state.step) == 0
    assert state.g_ema_params is not None  # the tiny config keeps an EMA
    for ema, live in ((state.g_ema_params, state.g_params),
                      (state.g_ema_batch_stats, state.g_batch_stats)):
        for e, x in zip(jax.tree.leaves(ema), jax.tree.leaves(live), strict=True):
            np.testing.assert_array_equal(e, x)


def test_ported_encoder_weights_replace_the_encoder_alone(records_dir, compile_cache, tmp_path):
    """`config.model.backbone_weights`: the state's encoder variables (and the EMA's) become
    the checkpoint's, the decoder keeps its initialisation, the tree keeps its structure."""
    from flax import nnx

    from jaxcolor.models import encoders, port

    config = tiny_config(records_dir)
    donor = encoders.build("resnet18", rngs=nnx.Rngs(7))  # another initialisation
    path = port.save_encoder_checkpoint(donor, tmp_path / "encoder")
    fresh = setup_lib.setup(config).init_state()
    config.model.backbone_weights = path
    run = setup_lib.setup(config)
    loaded = run.init_state()
    assert jax.tree_util.tree_structure(loaded) == jax.tree_util.tree_structure(fresh)
    want = nnx.to_pure_dict(nnx.state(donor))
    for tree in (loaded.g_params, loaded.g_batch_stats, loaded.g_ema_params):
        got = nnx.to_pure_dict(tree)
        flat_got = jax.tree_util.tree_flatten_with_path(got["encoder"])[0]
        flat_want = dict(jax.tree_util.tree_flatten_with_path(want)[0])
        for path_, value in flat_got:
            np.testing.assert_array_equal(value, flat_want[path_], err_msg=str(path_))
    decoder = lambda s: nnx.to_pure_dict(s)["decoder"]  # noqa: E731
    for a, b in zip(jax.tree.leaves(decoder(loaded.g_params)),
                    jax.tree.leaves(decoder(fresh.g_params)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_from_copies_a_hint_free_g_into_a_hinted_one(records_dir, compile_cache,
                                                          finished_run):
    """config.model.init_from: every variable of the source's G (the EMA's, as inference
    gets it) is copied; the added hint branch keeps its zero initialisation."""
    from flax import nnx

    from jaxcolor import checkpoints

    config = tiny_config(records_dir)
    config.model.hints = True
    config.model.init_from = f"{finished_run.workdir}:5"
    state = setup_lib.setup(config).init_state()
    source = checkpoints.read_config(finished_run.workdir / "checkpoints", 5)
    assert "hints" not in source["model"] or not source["model"]["hints"]
    ours = nnx.to_pure_dict(state.g_params)
    assert all(not np.any(x) for x in jax.tree.leaves(ours["hints"]))
    from jaxcolor.inference import restore

    theirs = nnx.to_pure_dict(restore.restore(finished_run.workdir, step=5).variables["params"])
    for a, b in zip(jax.tree.leaves(theirs["decoder"]), jax.tree.leaves(ours["decoder"]),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    config.model.init_from = f"{finished_run.workdir}:5"
    config.model.decoder_widths = (8, 8, 8, 8, 8)
    with pytest.raises(UsageError, match="config.model.init_from=.*does not fit this model"):
        setup_lib.setup(config).init_state()


def test_init_from_a_model_file_fine_tunes_it(records_dir, compile_cache, finished_run,
                                              tmp_path):
    """config.model.init_from=PATH.npz (the starter's format, `jaxcolor.model_file`): G
    starts from the file's variables, as from a run; a hint branch the file lacks keeps its
    zero initialisation; a generator of another shape is refused, naming the field."""
    from flax import nnx

    from jaxcolor.inference import restore, starter

    path = starter.save(restore.restore(finished_run.workdir, step=5), tmp_path / "m.npz",
                        dtype="float32")
    config = tiny_config(records_dir)
    config.model.hints = True
    config.model.init_from = str(path)
    state = setup_lib.setup(config).init_state()
    ours = nnx.to_pure_dict(state.g_params)
    assert all(not np.any(x) for x in jax.tree.leaves(ours.pop("hints")))
    loaded = starter.load(path).variables
    assert_trees_equal(ours, nnx.to_pure_dict(loaded["params"]))  # every shared variable
    assert_trees_equal(nnx.to_pure_dict(state.g_batch_stats),
                       nnx.to_pure_dict(loaded["batch_stats"]))
    config.model.decoder_widths = (8, 8, 8, 8, 8)
    with pytest.raises(UsageError, match=r"init_from=.*m\.npz: its G does not fit this "
                       r"model \(params/\S+ and \d+ more differ"):
        setup_lib.setup(config).init_state()
    config.model.init_from = str(tmp_path / "absent.npz")
    with pytest.raises(UsageError, match="absent.npz: no such model file"):
        setup_lib.setup(config).init_state()
