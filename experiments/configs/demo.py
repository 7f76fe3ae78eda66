r"""The embedded demo: a small ResNet-18 U-Net GAN trained on CPU in minutes.

  python experiments/run.py --config=experiments/configs/demo.py --workdir=/tmp/jaxcolor-demo

On first run it builds a records set of random crops of scikit-image's bundled photos inside
the workdir, then trains through every phase (L1 pretraining, NoGAN D pretraining, GAN) and
leaves checkpoints, TensorBoard logs (workdir/tb) and workdir/samples.png, a grid of
gray | predicted | true validation images. It is the gan.py recipe, shrunk.
"""

import ml_collections

from jaxcolor import configs

gan = configs.sibling(__file__, "gan.py")  # config files are scripts, loaded by path


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = gan.get_config()
    config.batch_size = 8  # small batches: 2 CPU cores
    config.phases.pretrain_steps = 240  # phase 1: L1
    config.phases.d_pretrain_steps = 20  # NoGAN: D on the frozen generator's output
    config.phases.gan_steps = 100  # phase 2: GAN

    config.data.build_demo = True  # make the records from scikit-image's photos if missing
    config.data.train = "demo_records"  # relative paths are resolved inside the workdir
    config.data.crop_size = 96  # training crops (multiple of 32; 64 puts layer4 at 2x2, a slow XLA:CPU conv path)
    config.data.demo_image_size = 112  # stored record size; crops are taken from it
    config.data.demo_crops_per_photo = 48  # random crops per bundled colour photo

    config.model.backbone = "resnet18"
    config.model.decoder_widths = (96, 48, 32, 16, 16)
    config.model.d_width = 32  # a narrower PatchGAN
    config.gan.lambda_l1 = 100.0

    config.log_every = 20
    config.eval_every = 120
    config.eval_max_images = 64
    config.checkpoint_every = 120
    config.probe_images = 8

    if variant == "smoke":  # a few steps of each phase, for CI
        config.phases.pretrain_steps = 6
        config.phases.d_pretrain_steps = 2
        config.phases.gan_steps = 4
        config.batch_size = 8
        config.data.demo_crops_per_photo = 8
        config.log_every = 2
        config.eval_every = 6
        config.checkpoint_every = 6
        config.eval_max_images = 16
    elif variant:
        raise ValueError(f"demo.py: unknown variant {variant!r}; choose '' or 'smoke'")
    return config
