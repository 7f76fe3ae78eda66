r"""Train the jaxcolor GAN.

  python experiments/run.py --config=experiments/configs/gan.py --workdir=DIR \
      [--config.data.train=/path/to/records --config.batch_size=256 --config.g.lr=1e-4]

Running the same command again with the same workdir resumes from the newest checkpoint.
Exit status: 0 done (or stopped by SIGTERM/Ctrl-C after saving), 1 the run failed (damaged
data, a NaN loss, a checkpoint that could not be written), 2 usage (a bad flag, config
override or path), each reported in one `error:` line (`jaxcolor.errors`).
"""

import logging as std_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file (a variant may follow a colon: gan.py:pretrain).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(std_logging.Filter):
    """Keep Orbax's and Grain's per-save INFO chatter out of the console; warnings still show,
    except Orbax's at every checkpoint saved between evaluations (by design they carry no
    validation metric; the best-checkpoint ranking skips them)."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        noisy = any(f"{os.sep}{lib}{os.sep}" in record.pathname for lib in ("orbax", "grain"))
        if noisy and record.getMessage().startswith("Requested `tracked_metric`"):
            return False
        return record.levelno >= std_logging.WARNING or not noisy


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    import jax

    from jaxcolor import checkpoints, errors
    from jaxcolor.train import distributed, loop

    logging.get_absl_handler().addFilter(_QuietLibraries())
    config = _CONFIG.value
    workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value))
    if config.compilation_cache:  # compiled steps are reused across restarts
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(config.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    if config.data.build_demo and config.data.train and not os.path.isabs(config.data.train):
        config.data.train = os.path.join(workdir, config.data.train)
    try:
        distributed.initialize_distributed(config.distributed)
        logging.info("JAX %s on %d %s device(s), %d process(es)", jax.__version__,
                     jax.device_count(), jax.devices()[0].platform, jax.process_count())
        loop.train_and_evaluate(config, workdir)
    except errors.JaxcolorError as e:  # one line; 2 for a usage error, 1 for a failed run
        code = errors.report(e)
        if isinstance(e, checkpoints.CheckpointError):
            # A save that timed out leaves Orbax's writer thread (not a daemon) blocked for
            # good, and the interpreter's exit would wait for it: everything of the run is
            # closed and flushed by now, so leave without waiting.
            logging.flush()
            sys.stdout.flush()
            os._exit(code)
        sys.exit(code)


def _parse_flags(argv):
    """absl's parser, with a bad `--config.*` override (unknown key, wrong type) reported as
    one line instead of the traceback ml_collections' bare exception would print."""
    from jaxcolor import errors

    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        overrides = " ".join(a for a in argv[1:] if a.startswith("--config."))
        print(f"error: bad config override ({e}) in: {overrides}", file=sys.stderr)
        sys.exit(errors.EXIT_USAGE)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
