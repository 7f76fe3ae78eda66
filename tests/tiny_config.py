r"""The tests' one run config: the gan.py recipe shrunk to seconds per phase on one CPU core.

  python tests/faults/trainer.py --config=tests/tiny_config.py:faults \
      --config.data.train=RECORDS --config.compilation_cache=CACHE --workdir=DIR

A config file (not a module of the tests package) because trainer subprocesses and
experiments/run.py load it by path, as users load experiments/configs/*.py.

"" (the training tests, `tests.support.tiny_config`): ResNet-18 encoder, a 16-wide decoder,
an 8-wide PatchGAN, 96x96 crops, global batch 4; 4 pretrain, 2 D-pretrain and 4 GAN steps.
It turns on what a real run may use so the tests exercise it: the encoder freeze, an EMA of
G, and AdamW for G (weight decay must not move a frozen encoder either). 96 px: at 32 the
encoder's last stage is 1x1, BatchNorm there normalises 4 numbers per channel and gradients
change by ~1% with the order of the batch (too ill-conditioned to compare 1 and 4 devices);
at 64 (2x2) XLA:CPU takes a slow convolution path; at 96 (3x3) gradients agree to ~1e-5
whatever the summation order.

"faults" (tests/faults/): 32x32 crops (the fastest compile), all three phases (8 + 2 + 6
steps) so that a resumed run crosses phase boundaries, and the pretraining staged as
progressive training stages it: 4 steps of batch 8 at its own learning rate, then 4 of batch
4, so a run killed or stopped in either stage, or at the boundary, must resume in the right
stage at the right data position (both stages crop 32: the 40 px records hold no larger
multiple of 32; the crop schedule itself is pinned by tests/data/test_pipeline.py).
Checkpoints every 2 steps (~100 MB each) and none deleted, so a test sees every checkpoint a
run left; no EMA (a third less to write at every checkpoint); evaluation only at the end.
"""

import pathlib

import ml_collections

from jaxcolor import configs

GAN = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "configs" / "gan.py"


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = configs.load(GAN)
    config.seed = 0
    config.batch_size = 4
    config.phases.pretrain_steps = 4
    config.phases.d_pretrain_steps = 2
    config.phases.gan_steps = 4
    config.data.crop_size = 96
    config.data.prefetch = 2
    config.model.backbone = "resnet18"
    config.model.decoder_widths = (16, 16, 16, 16, 8)
    config.model.d_width = 8
    config.model.compute_dtype = "float32"
    config.g.lr = 1e-3
    config.g.schedule = "constant"  # gan.py's cosine reaches 0 within these few steps
    config.g.weight_decay = 1e-4
    config.g.encoder_freeze_steps = 2
    config.g.ema_decay = 0.9
    config.loss.lambda_cf = 0.0  # plain L1: the tests of each loss switch turn it on
    config.best_metric = "l1"
    config.log_every = 1  # one point per step: tests compare runs step by step
    config.eval_every = 5
    config.eval_max_images = 8
    config.probe_images = 3
    config.checkpoint_every = 5
    config.compilation_cache = ""  # tests manage the cache
    if variant == "faults":
        config.phases.pretrain_steps = 8
        config.phases.gan_steps = 6
        config.phases.pretrain_stages = ((32, 4, 8, 2e-3), (32, 4))
        config.data.crop_size = 32
        config.g.ema_decay = 0.0
        config.eval_every = 1_000_000
        config.probe_images = 2
        config.checkpoint_every = 2
        config.keep_checkpoints = 1_000
        config.keep_best = 0
        config.checkpoint_timeout_s = 20  # a hung save fails the run within the test's wait
        config.distributed.enabled = "false"
    elif variant:
        raise ValueError(f"tests/tiny_config.py: unknown variant {variant!r}")
    return config
