"""What every subcommand shares: the checkpoint and colouriser flags, help epilogues of
examples, the one rule that turns exceptions into exit statuses, and the progress bar
(`jaxcolor.progress`, which the training console shares)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from jaxcolor import errors
from jaxcolor.progress import ProgressBar

__all__ = ["ProgressBar", "add_checkpoint_flags", "add_colorizer_flags", "add_shard_flag",
           "check_no_step", "check_positive", "describe_model", "examples", "load_colorizer",
           "run_command"]


def examples(*lines: str) -> str:
    """A help epilogue of example command lines."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_checkpoint_flags(parser: argparse.ArgumentParser) -> None:
    """--checkpoint (a run workdir, its checkpoints/ directory, or a model file in the
    starter's format; default: the starter model shipped with jaxcolor) and --step | --best."""
    parser.add_argument("--checkpoint",
                        help="a training run directory (holding checkpoints/), a checkpoints "
                             "directory, or a model file (.npz, written by `python -m "
                             "jaxcolor.inference.starter RUN OUT`) (default: the starter model "
                             "that ships with jaxcolor)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    which.add_argument("--best", action="store_true",
                       help="the best checkpoint by the run's config.best_metric on its "
                            "validation photos (l1, delta_cf, psnr or combined)")


def add_colorizer_flags(parser: argparse.ArgumentParser) -> None:
    """How the restored generator colourises: render size, batch, upsampling, backend,
    where the full-resolution work runs, and the pipeline's worker threads."""
    from jaxcolor.inference.colorizer import BACKENDS, COMPOSES
    from jaxcolor.inference.photo import UPSAMPLING

    parser.add_argument("--render_size", type=int, default=None,
                        help="side the network sees (multiple of 32; default: training crop)")
    parser.add_argument("--batch_size", type=int, default=8, help="photos per forward pass")
    parser.add_argument("--upsample", choices=UPSAMPLING, default="bilateral",
                        help="how predicted colour reaches full resolution")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="run G with JAX, or as ONNX in ONNX Runtime (faster on CPU; "
                             "pip install 'jaxcolor[onnx]'); auto: onnx on a CPU where it "
                             "is installed, else jax")
    parser.add_argument("--compose", choices=COMPOSES, default="auto",
                        help="full-resolution pixel work on the device (jitted JAX) or the "
                             "host (numpy); auto: device on an accelerator, else host")
    parser.add_argument("--chroma", type=float, default=None,
                        help="scale the predicted colour's chroma (a/b) by this: above 1 "
                             "more vivid, below 1 more muted (default: the model's own, "
                             "calibrated on validation photos)")
    parser.add_argument("--chroma_gamma", type=float, default=None,
                        help="the scale's exponent on the predicted chroma: 1 scales every "
                             "pixel alike; above 1, strongly coloured pixels more than faint "
                             "ones (default: the model's own; `--chroma 1 --chroma_gamma 1` "
                             "is the network's raw colour)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="threads decoding, finishing and writing photos beside the "
                             "device (default: every core)")


def load_colorizer(args):
    """The Colorizer the shared flags name (the starter model without --checkpoint), with
    library logs quietened; says on stderr which model it is."""
    from absl import logging  # Orbax logs every read-only manager at WARNING

    from jaxcolor.inference.colorizer import Colorizer

    logging.set_verbosity(logging.ERROR)
    options = dict(render_size=args.render_size, batch_size=args.batch_size,
                   upsample=args.upsample, backend=args.backend, compose=args.compose,
                   chroma=args.chroma, chroma_gamma=args.chroma_gamma)
    if args.checkpoint is None:
        check_no_step(args)
        colorizer = Colorizer.from_starter(**options)
    else:
        colorizer = Colorizer.from_checkpoint(args.checkpoint, step=args.step, best=args.best,
                                              **options)
    print(f"model: {describe_model(colorizer)}", file=sys.stderr, flush=True)
    return colorizer


def check_no_step(args) -> None:
    """--step and --best choose among a run's checkpoints: not without --checkpoint."""
    if args.step is not None or args.best:
        raise errors.UsageError("--step and --best choose among a run's checkpoints: give "
                                "--checkpoint too")


def describe_model(colorizer) -> str:
    """One line naming the model a command uses."""
    from jaxcolor.inference import starter
    from jaxcolor.models import factory

    backbone = factory.backbone(colorizer.config.model)
    hints = ("reads colour hints, then spreads them" if colorizer.reads_hints
             else "hints spread after it")
    about = (f"{backbone} U-Net, {hints}, chroma x{colorizer.chroma:g} with exponent "
             f"{colorizer.chroma_gamma:g}")
    if colorizer.directory == starter.PATH:
        return f"the starter model shipped with jaxcolor ({about})"
    return f"{colorizer.directory} step {colorizer.step} ({about})"


def add_shard_flag(parser: argparse.ArgumentParser) -> None:
    """--shard I/N: this machine's share of an archive (`jaxcolor.inference.shards`)."""
    parser.add_argument("--shard", metavar="I/N", default=None,
                        help="process only shard I of N (0 <= I < N) of the inputs, for one "
                             "command per machine under a scheduler; every input belongs to "
                             "exactly one shard")


def check_positive(**values: int | None) -> None:
    """Refuse flags that must be positive, naming the flag."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise errors.UsageError(f"--{name} must be >= 1, got {value}")


def run_command(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand under the one exit-status rule of `jaxcolor.errors`: 0 all done, 1 the
    run or some inputs failed, 2 a usage error, 130 interrupted; a user's mistake is one line
    on stderr, never a traceback."""
    try:
        return command(args)
    except errors.JaxcolorError as e:
        return errors.report(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
