r"""The real recipe: ResNet-101 U-Net generator + conditional PatchGAN at 224x224.

Run (from the repo root, after `pip install -e .`):

  python experiments/run.py --config=experiments/configs/gan.py \
      --config.data.train=/data/colorization_records --workdir=/runs/gan101

Variants after a colon, as in big_vision:
  gan.py            phase 1 L1 pretraining, NoGAN discriminator pretraining, phase 2 GAN
  gan.py:pretrain   phase 1 only (an L1 generator; the usual first run)
  gan.py:nogan      DeOldify's NoGAN schedule: long L1 pretraining, D pretrained on frozen-G
                    outputs, then a short GAN phase

Any field can be overridden on the command line: --config.batch_size=256 --config.g.lr=1e-4.
"""

import ml_collections


def optimizer_config(lr: float) -> ml_collections.ConfigDict:
    """Adam as pix2pix sets it (lr 2e-4, beta1 0.5); one per model."""
    return ml_collections.ConfigDict({
        "lr": lr,  # peak learning rate
        "b1": 0.5,  # Adam beta1 (0.5 is the GAN-stable choice of DCGAN/pix2pix)
        "b2": 0.999,  # Adam beta2
        "weight_decay": 0.0,  # > 0 switches Adam to AdamW
        "schedule": "constant",  # constant | linear_decay (to 0, pix2pix) | cosine
        "warmup_steps": 0,  # linear warm-up from 0 over this many of this model's updates
        "clip_grad_norm": 0.0,  # clip gradients to this global norm; 0 disables
    })


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # model initialisation; data order and augmentation use data.shuffle_seed
    config.batch_size = 64  # global batch, split evenly over every device of every host

    config.phases = ml_collections.ConfigDict()
    # A long L1 phase and a short GAN phase (about a tenth of the training FLOPs: a GAN step
    # costs 1.5 pretraining steps): colour quality on held-out photos peaks in or just after
    # pretraining and the GAN phase's swings cost PSNR (BENCHMARKS.md, "Quality").
    config.phases.pretrain_steps = 45_000  # phase 1: G alone with L1 (MAE)
    config.phases.d_pretrain_steps = 0  # NoGAN: D on frozen-G outputs before the GAN phase
    config.phases.gan_steps = 3_300  # phase 2: adversarial training, D and G alternating
    # Progressive pretraining (off when empty): ((crop, steps[, batch[, lr]]), ...) whose steps
    # add up to pretrain_steps, e.g. ((128, 8_000), (176, 6_000), (224, 6_000)); batch/lr 0 =
    # batch_size / g.lr. Later phases run at data.crop_size (train/schedule.py).
    config.phases.pretrain_stages = ()

    config.data = ml_collections.ConfigDict()
    config.data.train = ml_collections.FieldReference(None, field_type=str)  # records dir
    config.data.val = ml_collections.FieldReference(None, field_type=str)  # None: train's val split
    config.data.crop_size = 224  # random crop for training, centre crop for validation
    config.data.flip = True  # random horizontal flips (training only)
    config.data.shuffle_seed = 0  # the order of records; same seed, same batches
    config.data.num_workers = 0  # Grain worker processes (keep fixed across a resumed run)
    config.data.prefetch = 2  # batches read ahead of the step (on the host, and to the devices)
    config.data.filter = ml_collections.ConfigDict()
    config.data.filter.min_colorfulness = 5.0  # drop grayscale / near-monochrome records
    config.data.filter.min_ab_std = ml_collections.FieldReference(None, field_type=float)  # off
    config.data.filter.min_l_std = 4.0  # drop flat, low-contrast records
    config.data.build_demo = False  # build a demo records set from scikit-image photos first
    config.data.demo_image_size = 80  # demo records' stored size (only with build_demo)
    config.data.demo_crops_per_photo = 48  # demo crops per bundled photo (only with build_demo)

    config.model = ml_collections.ConfigDict()
    config.model.backbone = "resnet101"  # resnet18..resnet152 | mobilenet_v2 | efficientnet_lite0
    config.model.decoder_widths = (256, 128, 64, 32, 16)  # U-Net decoder, 1/16 -> full scale
    config.model.self_attention = False  # SAGAN block at 1/16 scale
    config.model.hints = False  # colour-hint inputs (models/hint_branch.py); see config.hints
    config.model.hint_scales = (32, 16, 8, 4, 2, 1)  # decoder scales the hint map joins
    config.model.hint_encoder = True  # the encoder sees the hinted pixels in colour
    # regression (tanh (a, b), L1) | bins (Zhang et al.'s classification over the 265 ab
    # bins, cross-entropy, decoded by the annealed mean at `temperature`): models/generator.py
    config.model.colour_head = "regression"
    config.model.temperature = 0.38
    # Inference: the predicted a/b times this (hue kept), calibrated on validation photos
    # for a shipped model (benchmarks/quality.py --chroma); `--chroma` overrides it. Training
    # takes G's loss on the same delivered colours (1 until a model is calibrated).
    config.model.chroma = 1.0
    # ...with this exponent on the predicted chroma (jaxcolor/color.py, `scale_chroma`): 1 is
    # one scale for every pixel; above 1, strongly coloured pixels are scaled more.
    config.model.chroma_gamma = 1.0
    # The encoder's ImageNet weights: a `jaxcolor port` output (models/port.py).
    config.model.backbone_weights = ml_collections.FieldReference(None, field_type=str)
    # G from another run's checkpoint ("RUN" or "RUN:STEP"), e.g. a hint-free model to learn
    # hints from: the variables both share are copied, a new hint branch starts at zero.
    config.model.init_from = ml_collections.FieldReference(None, field_type=str)
    config.model.compute_dtype = "auto"  # auto: bfloat16 on GPU/TPU, float32 on CPU
    config.model.d_width = 64  # PatchGAN base width (64-128-256-512)
    config.model.d_layers = 3  # 3 strided layers: 70x70 receptive field
    config.model.d_norm = "batch"  # batch | instance | none
    config.model.d_spectral_norm = False  # spectral normalisation of D's convolutions

    # G's peak rate is 2.5x pix2pix's, decayed along a cosine over every G update: the CPU twin
    # reaches the quality target with it where the constant 2e-4 did not (BENCHMARKS.md,
    # "Quality"); the GAN phase runs in the cosine's tail, as DeOldify's gentle GAN phase does.
    config.g = optimizer_config(5e-4)
    config.g.schedule = "cosine"
    config.g.encoder_freeze_steps = 0  # no encoder updates before this global step
    # "all" | "hints": only the hint branch learns, on G in eval mode, so a hint-free
    # model's automatic colours stay exactly as they were (init_from it).
    config.g.trainable = "all"
    config.g.ema_decay = 0.99  # EMA of G's weights for eval/inference; 0 disables
    config.d = optimizer_config(2e-4)

    config.gan = ml_collections.ConfigDict()
    config.gan.loss = "vanilla"  # vanilla | lsgan | hinge
    config.gan.lambda_l1 = 100.0  # weight of L1 beside the adversarial term (pix2pix)

    config.loss = loss_config()

    # Colour hints simulated from the truth while G learns (data/simulated_hints.py), when
    # config.model.hints is on: Zhang et al. 2017's geometric number of square patches.
    config.hints = ml_collections.ConfigDict({
        "p": 1 / 8,  # geometric parameter of the points per image (mean 7)
        "max_points": 24,  # at most this many points an image
        "max_patch": 9,  # patch sides 1..max_patch pixels, each the truth's mean colour
        "none_share": 0.25,  # share of the batches without any hint (automatic quality)
    })

    config.log_every = 100  # console line + TensorBoard scalars
    config.eval_every = 2_000  # validation metrics + probe image grid
    config.eval_max_images = 1_000  # validation images per evaluation
    config.probe_images = 8  # fixed validation images shown in the grid
    config.checkpoint_every = 2_000  # asynchronous Orbax save (always also at the end)
    config.keep_checkpoints = 3  # latest checkpoints kept
    config.keep_best = 1  # best checkpoints kept by config.best_metric
    # A save not committed this many seconds after it started stops the run with an error
    # (earlier checkpoints intact) instead of blocking it forever: Orbax's default, 20 min.
    config.checkpoint_timeout_s = 1_200
    config.best_metric = "combined"  # l1 | delta_cf | psnr | combined: what "best" means
    config.compilation_cache = "~/.cache/jaxcolor/xla"  # persistent XLA cache; "" disables

    config.distributed = ml_collections.ConfigDict()
    config.distributed.enabled = "auto"  # auto: on when a launcher/coordinator is detected
    config.distributed.coordinator_address = ml_collections.FieldReference(None, field_type=str)
    config.distributed.num_processes = ml_collections.FieldReference(None, field_type=int)
    config.distributed.process_id = ml_collections.FieldReference(None, field_type=int)
    config.distributed.cpu_collectives = "gloo"  # CPU-only multi-process collectives

    _apply_variant(config, variant)
    return config


def loss_config() -> ml_collections.ConfigDict:
    """G's reconstruction loss, in every phase (BENCHMARKS.md, "Quality", measures each term)."""
    return ml_collections.ConfigDict({
        "rebalance": False,  # class-rebalanced L1 (Zhang et al. 2016): rare colours count more
        "rebalance_mix": 0.5,  # lambda: share of the uniform distribution in the prior
        "rebalance_sigma": 5.0,  # Gaussian smoothing of the prior, ab units
        "lambda_cf": 0.1,  # colourfulness gap to the truth (DDColor), relative to L1; 0 off
    })


def _apply_variant(config: ml_collections.ConfigDict, variant: str) -> None:
    if variant == "pretrain":
        config.phases.d_pretrain_steps = 0
        config.phases.gan_steps = 0
    elif variant == "nogan":
        config.phases.pretrain_steps = 40_000
        config.phases.d_pretrain_steps = 2_000
        config.phases.gan_steps = 2_000
        config.g.lr = 1e-5  # DeOldify's GAN phase is short and gentle
        config.d.lr = 1e-5
    elif variant:
        raise ValueError(f"gan.py: unknown variant {variant!r}; choose '', 'pretrain' or 'nogan'")
