"""What every subcommand shares: the progress bar, the checkpoint and colouriser flags, help
epilogues of examples, and the one rule that turns exceptions into exit statuses."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from jaxcolor import errors


class ProgressBar:
    """A one-line progress bar with rate and ETA, redrawn at most every `interval` seconds."""

    def __init__(self, label: str, stream=None, width: int = 30, interval: float = 0.1,
                 unit: str = "/s"):
        self.label, self.width, self.interval, self.unit = label, width, interval, unit
        self.stream = sys.stderr if stream is None else stream
        self._started = self._drawn = time.time()
        self._active = False

    def __call__(self, done: int, total: int) -> None:
        now = time.time()
        if done < total and now - self._drawn < self.interval:
            return
        self._drawn, self._active = now, True
        filled = int(self.width * done / max(total, 1))
        rate = done / max(now - self._started, 1e-9)
        eta = f" ETA {_duration((total - done) / rate)}" if 0 < done < total else ""
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{total} {100 * done / max(total, 1):3.0f}% "
                          f"{rate:.1f}{self.unit}{eta}   ")
        self.stream.flush()

    def close(self) -> None:
        if self._active:
            self.stream.write("\n")
            self.stream.flush()
            self._active = False


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def examples(*lines: str) -> str:
    """A help epilogue of example command lines."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_checkpoint_flags(parser: argparse.ArgumentParser) -> None:
    """--checkpoint (a run workdir or its checkpoints/ directory) and --step | --best."""
    parser.add_argument("--checkpoint", required=True,
                        help="a training run directory (holding checkpoints/) or a "
                             "checkpoints directory")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    which.add_argument("--best", action="store_true",
                       help="the best checkpoint by validation score")


def add_colorizer_flags(parser: argparse.ArgumentParser) -> None:
    """How the restored generator colourises: render size, batch, upsampling, backend."""
    from jaxcolor.inference.colorizer import BACKENDS
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


def load_colorizer(args):
    """The Colorizer the shared flags name, with library logs quietened."""
    from absl import logging  # Orbax logs every read-only manager at WARNING

    from jaxcolor.inference.colorizer import Colorizer

    logging.set_verbosity(logging.ERROR)
    return Colorizer.from_checkpoint(
        args.checkpoint, step=args.step, best=args.best, render_size=args.render_size,
        batch_size=args.batch_size, upsample=args.upsample, backend=args.backend)


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
