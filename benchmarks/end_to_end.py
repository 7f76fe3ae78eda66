"""Real training for a fixed number of steps: images/s and the share of time spent waiting
for data.

    python -m benchmarks.end_to_end --synthetic 2000                  # demo.py model, 96 px
    python -m benchmarks.end_to_end --records /data/records --config experiments/configs/gan.py \
        --steps 300 --log_every 50 --phase gan

Runs `jaxcolor.train.loop.train_and_evaluate` (the same code as experiments/run.py: Grain
pipeline, device placement, jitted steps, one-step-late metric fetches, checkpointing) on a
records set in a temporary workdir (`--workdir` keeps it), for `--steps` steps of one phase.
The figures are the loop's own: every `--log_every` steps its Monitor writes
`perf/images_per_sec` (global batch / mean step time), `perf/data_wait_fraction` (time
waiting for the next device batch / step time) and `perf/host_ms_per_step` (the step time
less the waits for data and for the device: the host's own work per step, which holds the
device back once it nears the device's step time) to TensorBoard; they are read back from the
event file. Compare `value` with `benchmarks.train_step` (the device-only figure).
The first window holds the compilation and is dropped; `value` is the median of the others.

`--synthetic N` writes N random uint8 records (no validation split, so no evaluation runs).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

from benchmarks import common

AREA = "end_to_end"

PHASES = ("pretrain", "d_pretrain", "gan")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--records", help="an existing records directory")
    src.add_argument("--synthetic", type=int, metavar="N",
                     help="write N random records to a temporary directory and train on them")
    p.add_argument("--image_size", type=int, default=None,
                   help="stored size of --synthetic records (default: the crop size + 16)")
    common.add_config_args(p, default=common.DEMO_CONFIG)
    p.add_argument("--steps", type=int, default=60, help="training steps to run")
    p.add_argument("--log_every", type=int, default=10,
                   help="steps per measured window (the first window is dropped)")
    p.add_argument("--phase", choices=PHASES, default="pretrain",
                   help="which phase's step to run for all --steps")
    p.add_argument("--workdir", default=None, help="keep the run here instead of a temp dir")
    common.add_out_arg(p, AREA)
    args = p.parse_args(argv)
    if args.log_every < 1 or args.steps < 2 * args.log_every:
        p.error(f"--steps {args.steps} must cover at least two --log_every windows "
                f"({args.log_every} steps each): the first holds the compilation")
    return args


def configure(config, records: str, args) -> None:
    """Point the config at the records; one phase of `--steps`; no eval/save before the end."""
    config.data.train = records
    config.data.val = None
    config.data.build_demo = False
    for phase in PHASES:
        config.phases[f"{phase}_steps"] = args.steps if phase == args.phase else 0
    config.log_every = args.log_every
    config.eval_every = args.steps
    config.checkpoint_every = args.steps


def read_perf(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The perf/* scalars of a run's TensorBoard events: {tag: [(step, value), ...]}."""
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError as e:
        raise common.BenchmarkArgumentError(
            "reading the run's TensorBoard events needs the `tensorboard` package "
            "(pip install -e .[test])") from e
    acc = event_accumulator.EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = ("perf/images_per_sec", "perf/data_wait_fraction", "perf/step_seconds",
            "perf/host_ms_per_step")
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags
            if t in acc.Tags()["scalars"]}


def main(argv=None) -> dict:
    args = _parse(argv)
    from jaxcolor.data.records import Records
    from jaxcolor.train import loop

    config = common.load_config(args.config)
    common.apply_overrides(config, args.overrides)
    crop = int(config.data.crop_size)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jaxcolor-e2e-")))
        if args.synthetic:
            from benchmarks.input_pipeline import write_synthetic

            records = write_synthetic(tmp / "records", args.synthetic,
                                      args.image_size or crop + 16)
        else:
            records = Path(args.records)
        count = len(Records(records))
        configure(config, str(records), args)
        workdir = Path(args.workdir) if args.workdir else tmp / "run"
        if (workdir / "checkpoints").is_dir() and any((workdir / "checkpoints").iterdir()):
            raise common.BenchmarkArgumentError(
                f"--workdir {workdir}: holds checkpoints, so training would resume instead of "
                "running --steps steps; choose an empty directory")
        loop.train_and_evaluate(config, workdir)
        perf = read_perf(workdir / "tb")

    rates = [v for _, v in perf["perf/images_per_sec"]][1:]  # window 1: compilation
    waits = [v for _, v in perf["perf/data_wait_fraction"]][1:]
    host_ms = [v for _, v in perf["perf/host_ms_per_step"]][1:]
    result = common.make_result(
        f"end_to_end/{args.phase}", round(statistics.median(rates), 2), "images/s",
        batch=int(config.batch_size), resolution=crop,
        data_wait_fraction=round(statistics.median(waits), 4),
        host_ms_per_step=round(statistics.median(host_ms), 3),
        step_ms=round(1000 * int(config.batch_size) / statistics.median(rates), 3),
        windows={"images_per_sec": [round(r, 2) for r in rates],
                 "data_wait_fraction": [round(w, 4) for w in waits],
                 "host_ms_per_step": [round(h, 3) for h in host_ms],
                 "first_window_images_per_sec": round(perf["perf/images_per_sec"][0][1], 2)},
        config={"config": args.config, "overrides": args.overrides, "phase": args.phase,
                "steps": args.steps, "log_every": args.log_every,
                "records": "synthetic" if args.synthetic else str(records), "count": count,
                "num_workers": int(config.data.num_workers),
                "prefetch": int(config.data.prefetch), **common.model_summary(config),
                "resolved_dtype": common.compute_dtype_name(config)})
    common.emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
