r"""The fault tests' run: the gan.py recipe shrunk to a few seconds on one CPU core.

  python tests/faults/trainer.py --config=tests/faults/tiny_config.py \
      --config.data.train=RECORDS --config.compilation_cache=CACHE --workdir=DIR

ResNet-18 encoder, a 16-wide decoder, an 8-wide PatchGAN, 32x32 crops (layer4 is 1x1; a
64 px crop puts it at 2x2, a slow XLA:CPU convolution path), global batch 4. All three
phases run (8 + 2 + 6 steps) so that a resumed run crosses phase boundaries, and the
pretraining is staged as progressive training stages it (`config.phases.pretrain_stages`):
4 steps of batch 8 at its own learning rate, then 4 of batch 4, so a run killed or stopped
in either stage, or at the boundary, must resume in the right stage at the right data
position. (Both stages crop 32: the 40 px records hold no larger multiple of 32; the crop
schedule itself is pinned by tests/data/test_pipeline.py.) Checkpoints every 2 steps
(~100 MB each) and none deleted, so a test sees every checkpoint a run left.
"""

import pathlib

import ml_collections

from jaxcolor import configs

GAN = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "configs" / "gan.py"


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    del variant
    config = configs.load(GAN)
    config.seed = 0
    config.batch_size = 4
    config.phases.pretrain_steps = 8
    config.phases.d_pretrain_steps = 2
    config.phases.gan_steps = 6
    config.phases.pretrain_stages = ((32, 4, 8, 2e-3), (32, 4))
    config.data.crop_size = 32
    config.data.prefetch = 2
    config.model.backbone = "resnet18"
    config.model.decoder_widths = (16, 16, 16, 16, 8)
    config.model.d_width = 8
    config.model.compute_dtype = "float32"
    config.g.lr = 1e-3
    config.g.ema_decay = 0.0  # no EMA copy: a third less to write at every checkpoint
    config.log_every = 1
    config.eval_every = 1_000_000  # only at the end: evaluation is not what these tests test
    config.eval_max_images = 8
    config.probe_images = 2
    config.checkpoint_every = 2
    config.keep_checkpoints = 1_000  # keep every checkpoint: tests inspect all of them
    config.keep_best = 0
    config.compilation_cache = ""  # tests pass a shared cache directory
    config.distributed.enabled = "false"
    return config
