"""Everything a run builds before its first step, from a config: `setup(config)`.

The training loop, the tests and the benchmarks all call this one function, so they run the
same models, optimisers, shardings and compiled steps. It computes and compiles nothing:
models are traced abstractly (`nnx.eval_shape`), which gives the graph definitions and the
state's shapes (the target a checkpoint restores onto); the steps compile at their first
call. `Setup.init_state()` then creates a fresh state on the devices when there is nothing
to restore.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax import nnx, traverse_util
from jax.sharding import Mesh, NamedSharding

from jaxcolor import checkpoints, model_file, sharding
from jaxcolor.errors import UsageError
from jaxcolor.models import factory
from jaxcolor.train import optim, state as state_lib, steps as steps_lib
from jaxcolor.train.schedule import Schedule


@dataclasses.dataclass(frozen=True)
class Setup:
    """A run's mesh, schedule, optimisers, model definitions, state shapes and steps."""

    config: object
    mesh: Mesh
    schedule: Schedule
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    defs: state_lib.ModelDefs
    abstract_state: state_lib.TrainState  # jax.ShapeDtypeStruct leaves, replicated shardings
    steps: steps_lib.Steps
    best_metric: str  # config.best_metric, checked: what makes a checkpoint "the best"

    @property
    def replicated(self) -> NamedSharding:
        return sharding.replicated(self.mesh)

    @property
    def batch_sharding(self) -> NamedSharding:
        return sharding.batch_sharding(self.mesh)

    def init_state(self) -> state_lib.TrainState:
        """A freshly initialised state, created inside `jax.jit` straight onto the replicated
        sharding (no host round trip of a ResNet-101's weights), with G from another run's
        checkpoint when `config.model.init_from` names one, else with ported encoder weights
        when `config.model.backbone_weights` names them."""
        init = functools.partial(initial_state, self.config, self.g_tx, self.d_tx)
        fresh = jax.jit(init, out_shardings=self.replicated)()
        if self.config.model.get("init_from"):
            return _warm_start(self.config, fresh, replicated=self.replicated)
        return _load_backbone(self.config, fresh, defs=self.defs, replicated=self.replicated)

    def place(self, host_state) -> state_lib.TrainState:
        """A host copy of a state (e.g. a test's saved initial state), on the devices."""
        return jax.device_put(host_state, self.replicated)


def initial_state(config, g_tx: optax.GradientTransformation,
                  d_tx: optax.GradientTransformation) -> state_lib.TrainState:
    """Both models initialised from `config.seed`, and their optimiser states. Pure."""
    return state_lib.create(
        factory.make_generator(config.model, seed=int(config.seed)),
        factory.make_discriminator(config.model, seed=int(config.seed) + 1),
        g_tx, d_tx, ema=float(config.g.ema_decay) > 0)


def setup(config, mesh: Mesh | None = None, *, schedule: Schedule | None = None,
          ab_weights=None) -> Setup:
    """Build a run's `Setup` from its config (mesh: default, every device of every process;
    schedule: the run's, which the training loop builds once for this and its inputs).

    `ab_weights`, the class-rebalancing weights of the training records' colour prior
    (`train.inputs`), are required when `config.loss.rebalance` is on.
    """
    mesh = sharding.make_mesh() if mesh is None else mesh
    schedule = Schedule.from_config(config) if schedule is None else schedule
    best_metric = checkpoints.best_metric(config)
    g_tx = optim.make_optimizer(config.g, field="g", total_updates=schedule.g_updates,
                                lr_scale=schedule.g_lr_scale(float(config.g.lr)))
    d_tx = optim.make_optimizer(config.d, field="d", total_updates=schedule.d_updates)
    defs = state_lib.ModelDefs.of(factory.abstract_generator(config.model),
                                  factory.abstract_discriminator(config.model))
    replicated = sharding.replicated(mesh)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
        jax.eval_shape(functools.partial(initial_state, config, g_tx, d_tx)))
    steps = steps_lib.build_steps(
        defs, steps_lib.StepConfig.from_config(config), g_tx, d_tx,
        g_params=abstract.g_params, state_sharding=replicated,
        ab_weights=ab_weights)
    return Setup(config=config, mesh=mesh, schedule=schedule, g_tx=g_tx, d_tx=d_tx, defs=defs,
                 abstract_state=abstract, steps=steps, best_metric=best_metric)


def _load_backbone(config, state: state_lib.TrainState, *, defs: state_lib.ModelDefs,
                   replicated: NamedSharding) -> state_lib.TrainState:
    """Load ported ImageNet weights into G's encoder when `config.model.backbone_weights` is
    set; otherwise say plainly that the encoder starts from random initialisation.

    Works on the state's own arrays: G's graph is merged with them (no second generator is
    initialised), the encoder's variables are replaced in place, and the tree split again."""
    path = config.model.backbone_weights
    if not path:
        logging.warning("config.model.backbone_weights is not set: the %s encoder starts from "
                        "random initialisation (port ImageNet weights with `jaxcolor port`)",
                        factory.backbone(config.model))
        return state
    from jaxcolor.models import port  # orbax restore of the encoder; only needed here

    host = jax.device_get((state.g_params, state.g_batch_stats))
    generator = defs.generator(*host, train=True)
    port.load_encoder_checkpoint(path, generator.encoder)
    _, params, rest = nnx.split(generator, nnx.Param, ...)
    params, rest = jax.device_put((params, rest), replicated)
    state = state.replace(g_params=params, g_batch_stats=rest)
    if state.g_ema_params is not None:
        state = state.replace(g_ema_params=jax.tree.map(jnp.copy, params),
                              g_ema_batch_stats=jax.tree.map(jnp.copy, rest))
    logging.info("Loaded %s encoder weights from %s", factory.backbone(config.model), path)
    return state


def _warm_start(config, state: state_lib.TrainState, *,
                replicated: NamedSharding) -> state_lib.TrainState:
    """G's variables from `config.model.init_from`: another run's checkpoint ("RUN" or
    "RUN:STEP"; the latest step by default) or a model file ("PATH.npz", or "starter": the
    one the wheel ships; `jaxcolor.model_file`). Every variable the two generators share
    (same path, same shape) comes from there, the rest keeps its initialisation (e.g. a hint
    branch added to a hint-free model: zero-initialised, so the warm start computes what the
    source does). A variable of the source this generator lacks, or one of another shape, is
    refused."""
    source = str(config.model.init_from)
    if source == "starter" or source.endswith(".npz"):
        fill, origin = _model_file_source(source)
    else:
        fill, origin = _run_source(source)
    merged = {}
    for name, tree in (("params", state.g_params), ("batch_stats", state.g_batch_stats)):
        host = jax.device_get(tree)  # a copy: the fresh state is not modified
        fill(name, host)
        merged[name] = jax.device_put(host, replicated)
    state = state.replace(g_params=merged["params"], g_batch_stats=merged["batch_stats"])
    if state.g_ema_params is not None:
        state = state.replace(g_ema_params=jax.tree.map(jnp.copy, merged["params"]),
                              g_ema_batch_stats=jax.tree.map(jnp.copy, merged["batch_stats"]))
    logging.info("Initialised G from %s", origin)
    return state


def _unfit(source: str, wrong: list[str]) -> UsageError:
    return UsageError(f"config.model.init_from={source}: its G does not fit this model "
                      f"({wrong[0]} and {len(wrong) - 1} more differ; config.model must be "
                      "the source's own)")


def _run_source(source: str):
    """(fill(name, host_state), description) for a run's checkpoint."""
    run, _, step = source.partition(":")
    directory = checkpoints.checkpoint_dir(run)
    step = checkpoints.resolve_step(directory, step=int(step) if step else None)
    source_model = ml_collections.ConfigDict(checkpoints.read_config(directory, step)["model"])
    generator = factory.abstract_generator(source_model)
    generator.eval()
    _, params, rest = nnx.split(generator, nnx.Param, ...)
    saved = checkpoints.read_generator(directory, step, {"params": params, "batch_stats": rest})

    def fill(name: str, host: nnx.State) -> None:
        flat = traverse_util.flatten_dict(nnx.to_pure_dict(host))
        theirs = traverse_util.flatten_dict(nnx.to_pure_dict(saved[name]))
        wrong = [k for k, v in theirs.items() if k not in flat or flat[k].shape != v.shape]
        if wrong:
            raise _unfit(source, ["/".join(map(str, k)) for k in wrong])
        nnx.replace_by_pure_dict(host, traverse_util.unflatten_dict({**flat, **theirs}))

    return fill, f"{directory} step {step}"


def _model_file_source(source: str):
    """(fill(name, host_state), description) for a model file."""
    path = model_file.resolve(source)
    if not path.is_file():
        raise UsageError(f"config.model.init_from={source}: no such model file ({path})")
    file = model_file.read(path, remedy=f"config.model.init_from={source}")

    def fill(name: str, host: nnx.State) -> None:
        wrong = model_file.misfits(file, name, host)
        if wrong:
            raise _unfit(source, wrong)
        model_file.place(file, name, host, partial=True, remedy=f"init_from={source}")

    return fill, f"{path} (step {file.about.get('step', 0)})"
