r"""The quality benchmark's recipes: gan.py shrunk to a CPU budget, one variant per ablation.

  python -m benchmarks.quality --photos=/data/photos --variants=l1,gan,gan_rebal

`benchmarks/quality.py` trains each variant for the same number of training FLOPs
(`config.quality.tflop`, split between the phases by the shares below; the step counts are
derived from XLA's cost analysis of each variant's own steps, so a variant that pretrains at
a lower resolution trains on more images) and measures it on held-out photos. The phase
lengths in this file are only defaults for a hand-run `experiments/run.py`; the benchmark
sets them from the budget.

Variants after a colon: tokens joined by "_", a base and any modifiers, in any order:
  l1        L1 pretraining only (the whole budget)
  gan       L1 pretraining, NoGAN D pretraining, GAN: gan.py's recipe (40% of the FLOPs in
            the GAN phase, as the recipe the issue measured: 1,500 L1 + 600 GAN steps at 96 px);
            `gan0.1` sets another share of the FLOPs for the GAN phase
  rebal     class-rebalanced L1 (config.loss.rebalance), Zhang et al.'s mix lambda = 0.5;
            `rebal0.8` sets another mix (a flatter weighting)
  bins      Zhang et al.'s classification head: cross-entropy over the 265 in-gamut ab
            bins, decoded by the annealed mean at T = 0.38 (config.model.colour_head)
  cf        the colourfulness loss, config.loss.lambda_cf = 1; `cf0.3` sets another weight
  prog      progressive pretraining: half the pretraining FLOPs on the 128 px crop
            downscaled to 96 px, half at 128 (the starter's recipe: `l1_prog_effl0`)
  pick      the best checkpoint by the combined validation score (config.best_metric)
  ema       evaluate and ship an exponential moving average of G's weights (decay 0.99,
            a ~100-step window: it smooths the GAN phase's swings between dull and garish);
            `ema0.995` sets another decay
  gpu       gan.py-sized: ResNet-101 U-Net at 224 px, batch 64, 360 PFLOP (~30 min of an
            H100 at the 2,300 images/s the project targets); prog there is 96 -> 160 -> 224
  mnv2      MobileNetV2 encoder from its ImageNet weights (the benchmark's --weights)
  effl0     EfficientNet-Lite0 encoder from its ImageNet weights
  scratch   the encoder from random initialisation (mnv2/effl0 without their weights)
  cap<N>    the training mixture: at most N photos of each source (the clothing set is two
            thirds of the pool)
  hints     G takes colour hints, simulated from the truth while it learns (config.hints;
            with --set model.init_from=RUN it starts from a hint-free run's G, and with
            --set g.trainable=hints only its hint branch learns: BENCHMARKS.md, "Colour hints")
  t<N>      a budget of N TFLOP instead of the CPU size's
  ""        the recipe gan.py ships, CPU-sized (see BENCHMARKS.md, "Quality")

CPU size: a ResNet-18 U-Net (or the backbone a token names) at 128 px crops of 144 px
records, batch 8, 45 TFLOP
(the issue's ~15 minutes a variant on a 2-core machine; the first ablation ran at 30).
128, not the demo's 96: a lower stage for progressive training must stay a multiple of 32,
and at 64 px XLA:CPU takes a slow convolution path (layer4 at 2x2; BENCHMARKS.md) that
would charge the comparison for a CPU quirk.
"""

import ml_collections

from jaxcolor import configs

gan = configs.sibling(__file__, "gan.py")

BASES = ("l1", "gan")
MODIFIERS = ("rebal", "bins", "cf", "prog", "pick", "ema", "gpu", "mnv2", "effl0", "scratch",
             "cap", "t", "hints")
NUMBERED = ("gan", "rebal", "cf", "ema", "cap", "t")  # tokens a number may follow
BACKBONES = {"mnv2": "mobilenet_v2", "effl0": "efficientnet_lite0"}
SHIPPED = "gan0.1_cf0.1_ema_pick"  # the default variant: gan.py's recipe (BENCHMARKS.md, Quality)


def _cpu(config: ml_collections.ConfigDict) -> None:
    config.batch_size = 8
    config.data.crop_size = 128
    config.model.backbone = "resnet18"
    config.model.decoder_widths = (96, 48, 32, 16, 16)
    config.model.d_width = 32
    config.quality.tflop = 45.0
    config.quality.record_size = 144
    config.quality.prog_stages = ((96, 0.5), (128, 0.5))
    config.log_every = 25
    config.eval_every = 50


def _gpu(config: ml_collections.ConfigDict) -> None:
    config.batch_size = 64
    config.data.crop_size = 224
    config.quality.tflop = 360_000.0
    config.quality.record_size = 256
    config.quality.prog_stages = ((96, 1 / 3), (160, 1 / 3), (224, 1 / 3))
    config.log_every = 100
    config.eval_every = 500


def _parse(variant: str) -> tuple[list[str], dict[str, float]]:
    """Tokens (numbers dropped) and the numbers that followed the `NUMBERED` ones."""
    tokens, values = [], {}
    for token in (t for t in variant.split("_") if t):
        name = next((n for n in NUMBERED if token.startswith(n) and token != n
                     and token[len(n):][:1] in "0123456789."), token)
        if name != token:
            try:
                values[name] = float(token[len(name):])
            except ValueError:
                name = token
        tokens.append(name)
    unknown = [t for t in tokens if t not in BASES + MODIFIERS]
    needs_number = {"cap", "t"} & set(tokens) - set(values)
    if (unknown or needs_number or sum(t in BASES for t in tokens) != 1
            or len(set(tokens)) != len(tokens) or sum(t in BACKBONES for t in tokens) > 1):
        raise ValueError(f"quality.py: bad variant {variant!r}: one of {BASES} and any of "
                         f"{MODIFIERS}, joined by '_' (e.g. 'gan_rebal_cf0.3')")
    return tokens, values


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    variant = variant or SHIPPED
    tokens, values = _parse(variant)
    config = gan.get_config()
    config.quality = ml_collections.ConfigDict()
    config.quality.variant = "_".join(t for t in variant.split("_") if t)
    config.quality.gan_share = values.get("gan", 0.4) if "gan" in tokens else 0.0  # of FLOPs
    config.quality.d_pretrain_share = 0.01 if "gan" in tokens else 0.0  # NoGAN D warm-up
    config.quality.stage_shares = ()  # ((crop, share of the pretraining FLOPs), ...)
    (_gpu if "gpu" in tokens else _cpu)(config)
    if "prog" in tokens:
        config.quality.stage_shares = config.quality.prog_stages

    config.data.shuffle_seed = 0
    config.phases.pretrain_steps = 1_000  # replaced by the benchmark's budget
    config.phases.d_pretrain_steps = 20 if "gan" in tokens else 0
    config.phases.gan_steps = 400 if "gan" in tokens else 0
    config.loss.rebalance = "rebal" in tokens
    config.loss.rebalance_mix = values.get("rebal", 0.5)
    config.loss.lambda_cf = values.get("cf", 1.0) if "cf" in tokens else 0.0
    config.model.colour_head = "bins" if "bins" in tokens else "regression"
    config.best_metric = "combined" if "pick" in tokens else "l1"
    config.g.ema_decay = values.get("ema", 0.99) if "ema" in tokens else 0.0
    backbone = next((BACKBONES[t] for t in tokens if t in BACKBONES), None)
    if backbone is not None:
        config.model.backbone = backbone
    config.quality.imagenet = backbone is not None and "scratch" not in tokens
    config.quality.cap = int(values.get("cap", 0))  # training photos per source; 0: all
    config.model.hints = "hints" in tokens
    if "t" in tokens:
        config.quality.tflop = float(values["t"])
    config.checkpoint_every = config.eval_every  # every evaluated state can be "the best"
    config.keep_checkpoints = 1_000  # the benchmark also scores the picks of other metrics
    config.eval_max_images = 1_000
    config.probe_images = 8
    return config
