r"""Colour quality on photos a model has never seen, per config variant, at equal training FLOPs.

    bash ../shared/data/get_photos.sh /data/photos          # + get_more_photos.sh /data/more
    jaxcolor port mobilenet_v2-b0353104.pth /data/ported/mobilenet_v2    # ImageNet encoders
    python -m benchmarks.quality --photos /data/photos,/data/more --test_photos /data/imagenet \
        --weights /data/ported --workdir /data/quality --variants l1_mnv2,gan0.1_cf0.1_ema_pick_mnv2
    # every decision on the validation table; then the chosen variant's test figures, once:
    python -m benchmarks.quality ... --variants CHOSEN --read_test --against /runs/old
    python -m benchmarks.quality --table benchmarks/results/quality.jsonl [--split test]
    # the pool with photos drawn like the test's, judged on those alone, beside the old run:
    python -m benchmarks.quality --photos /data/photos,/data/more,/data/imagen_src \
        --pool_name imagen --val_sources imagen --against /data/quality/runs/l1_effl0 ...

The photos (`benchmarks.quality_data`): the pool under --photos is split by photo into
train and validation; --test_photos are the test split, read only with --read_test. For each
variant of `experiments/configs/quality.py`:
  1. its phase lengths come from the FLOP budget (`benchmarks.quality_budget`),
  2. it trains through `jaxcolor.train.loop.train_and_evaluate` (what experiments/run.py
     runs) in WORKDIR/runs/VARIANT, validating on the validation photos' records, which pick
     checkpoints by each rule; run the command again to resume an interrupted run,
  3. the checkpoint the run's rule picks (`jaxcolor evaluate --best`), the final one and the
     picks of the other rules are measured as `jaxcolor evaluate --protocol=paper` measures
     (short side 256, centre crop 256, grayscale references skipped) on the validation
     photos (or those of --val_sources), or with --read_test only the pick on the test
     photos; each with paired bootstrap 95 % intervals over photos against the gray image
     (and against the runs of --against, on the same photos: on validation, the pick at
     the chroma scale the calibration rule chooses among --chroma's, `calibrated`).
One JSON line per variant and split (`figure` quality/VARIANT, `split`, `value` delta-CF).
Contact sheets: WORKDIR/runs/VARIANT/eval-SPLIT-STEP/contact_sheet.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from benchmarks import common, quality_budget, quality_data, quality_table

QUALITY_CONFIG = str(common.REPO / "experiments" / "configs" / "quality.py")
METRICS = ("psnr", "ssim", "ab_mae", "ab_auc", "cf", "cf_true", "delta_cf")
PICK_METRICS = ("l1", "psnr", "delta_cf", "combined")
OUT = common.RESULTS / "quality.jsonl"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", metavar="JSONL", help="print the Markdown table of a results "
                   "file's quality lines (the newest per variant and split) and exit")
    p.add_argument("--split", default="validation", help="with --table: which split's "
                   "table (validation, test, or validation:SOURCES of --val_sources)")
    p.add_argument("--sheets", metavar="DIR", help="with --table: copy each variant's "
                   "contact sheet (of its pick, from WORKDIR/runs) to DIR/VARIANT.jpg")
    p.add_argument("--photos", help="comma-separated folders of colour photos: the pool "
                   "split into train and validation")
    p.add_argument("--pool_name", default="", help="a name for this --photos pool when it "
                   "is not the benchmark's usual one: runs, records and figures carry it "
                   "(runs/VARIANT+NAME, quality/VARIANT+NAME), so pools never share them")
    p.add_argument("--val_sources", default="", help="comma list: measure validation on these "
                   "sources' validation photos only (split `validation:SOURCES`), e.g. imagen, "
                   "the photos drawn like the test's")
    p.add_argument("--test_photos", help="the test photos (read only with --read_test)")
    p.add_argument("--weights", help="folder of `jaxcolor port` encoder checkpoints, one per "
                   "backbone name (mobilenet_v2, efficientnet_lite0)")
    p.add_argument("--variants", default="gan0.1_cf0.1_ema_pick_mnv2",
                   help="quality.py variants, comma list")
    p.add_argument("--workdir", default="/tmp/jaxcolor-quality", help="records, runs, reports")
    p.add_argument("--tflop", type=float, default=None, help="override config.quality.tflop")
    p.add_argument("--val_fraction", type=float, default=0.15)
    p.add_argument("--val_per_source", type=int, default=120)
    p.add_argument("--read_test", action="store_true", help="measure each variant's pick on "
                   "the test photos (once, for the final table) instead of validation")
    p.add_argument("--against", metavar="RUN[:STEP][@CHROMA],...", default="",
                   help="runs to compare with on the same photos (paired intervals), e.g. "
                   "the old model (a run dir, or a starter-format .npz such as the shipped "
                   "starter), each at its own chroma unless @CHROMA")
    p.add_argument("--chroma", default="", help="validation: comma list of chroma scales to "
                   "measure the pick at (the calibration of `config.model.chroma`); with "
                   "--read_test: the one scale to measure at")
    p.add_argument("--calibrate", choices=("gain", "match"), default="gain",
                   help="which --chroma scale the --against runs are paired with: gain, the "
                   "calibration rule (`calibrated`); match, the scale whose PSNR is nearest "
                   "the first --against run's (colour compared at equal PSNR: the frontiers)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="FIELD=VALUE", help="override a config field of every variant")
    p.add_argument("--out", default=str(OUT),
                   help="JSON-lines file the results are appended to ('' to only print)")
    args = p.parse_args(argv)
    if not args.table and not (args.photos and args.test_photos):
        p.error("--photos and --test_photos are needed (or --table)")
    return args


# ---- data ----------------------------------------------------------------------------------


def prepare_data(args, config) -> dict:
    """The three splits, the training mixture of `config.quality.cap`, and the records of
    the training and validation photos (ingested once per mixture)."""
    from jaxcolor.data import images

    photos = quality_data.pool([Path(p) for p in args.photos.split(",")])
    train, val = quality_data.split(photos, fraction=args.val_fraction,
                                    per_source=args.val_per_source)
    test = images.find_images(args.test_photos)
    train, dropped = quality_data.without_test_copies(train, test)
    train = quality_data.capped(train, int(config.quality.cap))
    size = int(config.quality.record_size)
    workdir = Path(args.workdir)
    pool = f"+{args.pool_name}" if args.pool_name else ""
    mixture = f"-cap{int(config.quality.cap)}" if config.quality.cap else ""
    sources = {s for s in args.val_sources.split(",") if s}
    measured = [p for p in val if not sources or p.source in sources]
    if not measured:
        raise SystemExit(f"--val_sources {args.val_sources}: no validation photo comes from "
                         f"these sources (validation has {sorted(quality_data.describe(val))})")
    return {
        "train_records": quality_data.ingest(train, workdir / f"train-{size}{pool}{mixture}",
                                             size=size, val_every=0),
        "val_records": quality_data.ingest(val, workdir / f"val-{size}{pool}", size=size,
                                           val_every=0),
        "val_photos": sorted(p.path for p in measured), "test_photos": test,
        "summary": {"train": quality_data.describe(train), "validation":
                    quality_data.describe(val), "test": len(test),
                    "dropped_as_test_copies": [p.key for p in dropped]},
    }


# ---- one variant: plan, train, measure -----------------------------------------------------


def variant_config(variant: str, args):
    config = common.load_config(f"{QUALITY_CONFIG}:{variant}")
    common.apply_overrides(config, args.overrides)
    if args.tflop is not None:
        config.quality.tflop = args.tflop
    return config


def _attach(config, data: dict, args) -> None:
    config.data.train = str(data["train_records"])
    config.data.val = str(data["val_records"])
    config.data.build_demo = False
    if config.quality.imagenet:
        if not args.weights:
            raise SystemExit(f"{config.quality.variant}: an ImageNet-initialised encoder "
                             "needs --weights (a folder of `jaxcolor port` checkpoints)")
        config.model.backbone_weights = str(Path(args.weights) / config.model.backbone)


def train(config, run_dir: Path) -> dict:
    """Train (or resume) to the end; wall time summed over every call."""
    import jax

    from jaxcolor.train import loop

    if config.compilation_cache:  # as experiments/run.py: compiled steps reused on reruns
        jax.config.update("jax_compilation_cache_dir",
                          os.path.expanduser(config.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    timing_file = run_dir / "train_timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {"wall_s": 0.0}
    if _finished(config, run_dir):  # measured before: measure again without a restart
        return timing
    start = time.perf_counter()
    loop.train_and_evaluate(config, run_dir)
    timing["wall_s"] += time.perf_counter() - start
    timing_file.write_text(json.dumps(timing))
    if not _finished(config, run_dir):  # preempted (SIGTERM): the loop saved and returned
        raise SystemExit(f"{run_dir}: training stopped before its last step (interrupted); "
                         "no result written; run the same command again to resume it")
    return timing


def _finished(config, run_dir: Path) -> bool:
    from jaxcolor import checkpoints
    from jaxcolor.train.schedule import Schedule

    directory = run_dir / "checkpoints"
    if not directory.is_dir() or not any(p.name.isdigit() for p in directory.iterdir()):
        return False
    return checkpoints.resolve_step(directory) == Schedule.from_config(config).total


def validation_picks(run_dir: Path) -> tuple[int, dict[str, int]]:
    """(final step, {rule: the step it picks}) of a finished run, from the validation
    summaries its checkpoints recorded."""
    from jaxcolor import checkpoints

    scores, metas = {}, checkpoints.read_metas(checkpoints.checkpoint_dir(run_dir))
    for step, meta in metas.items():
        if meta.get("metrics"):
            summary = checkpoints.recorded_summary(meta["metrics"])
            scores[step] = {m: checkpoints.score(summary, m) for m in PICK_METRICS}
    steps = sorted(metas)
    picks = {m: min(scores, key=lambda s: scores[s][m]) for m in PICK_METRICS} if scores else {}
    return steps[-1], picks


def measure(run_dir: Path, step: int | None, paths: list[Path], split: str,
            chroma: float | None = None, reports: Path | None = None,
            chroma_gamma: float | None = None, render_size: int | None = None) -> dict:
    """A checkpoint on photos as `jaxcolor evaluate --protocol=paper` measures it (at a
    chroma scale, exponent and render size: `--chroma`, `chroma_gamma`, `render_size`;
    None: the model's own): the summary, bootstrap intervals against the gray image, and
    where the report is. `run_dir` may also be a
    starter-format `.npz` (the shipped starter model, `jaxcolor.inference.starter`).
    Reports go under `reports`, by default the run directory; a model file has none, so its
    caller names one (never the file's own folder: the shipped starter's is inside the
    installed package)."""
    from jaxcolor import evaluator
    from jaxcolor.inference import evaluation
    from jaxcolor.inference.colorizer import Colorizer

    if reports is None:
        if Path(run_dir).suffix == ".npz":
            raise ValueError(f"{run_dir}: a model file has no run directory for its reports; "
                             "name one")
        reports = run_dir
    colorizer = Colorizer.from_checkpoint(run_dir, step=step, chroma=chroma,
                                          chroma_gamma=chroma_gamma, render_size=render_size)
    jobs = evaluation.photo_jobs(paths, evaluation.Protocol("paper"))
    start = time.perf_counter()
    report = evaluation.evaluate(colorizer, jobs, max_images=None, sheet=12)
    seconds = time.perf_counter() - start
    tag = ("" if chroma is None else f"-chroma{chroma:g}") + \
        ("" if chroma_gamma is None else f"-gamma{chroma_gamma:g}") + \
        ("" if render_size is None else f"-render{colorizer.render_size}")
    out = Path(reports) / f"eval-{split.replace(':', '-')}-{colorizer.step}{tag}"
    summary = evaluation.write_report(out, colorizer, report,
                                      {"kind": "images", "protocol": "paper", "split": split})
    model, gray = evaluator.model_and_gray(summary)
    per_image = {k: [r[k] for r in report.per_image] for k in ("psnr", "psnr_gray", "cf",
                                                               "cf_true")}
    return {"step": colorizer.step, "chroma": colorizer.chroma,
            "chroma_gamma": colorizer.chroma_gamma,
            **{k: round(model[k], 4) for k in METRICS},
            "gray": {k: round(gray[k], 4) for k in METRICS},
            "intervals": _rounded(evaluator.bootstrap(per_image)),
            "photos": len(report.per_image), "skipped_gray": report.skipped_gray,
            "unreadable": len(report.unreadable), "eval_s": round(seconds, 1),
            "render_size": colorizer.render_size, "report": str(out / "metrics.json")}


def _rounded(intervals: dict) -> dict:
    return {k: [round(x, 4) for x in v] for k, v in intervals.items()}


def paired(report_a: str, report_b: str) -> dict:
    """Paired bootstrap intervals of model A minus model B on the same photos."""
    from jaxcolor import evaluator

    rows = [{r["name"]: r for r in json.loads(Path(p).read_text())["per_image"]}
            for p in (report_a, report_b)]
    names = sorted(set(rows[0]) & set(rows[1]))
    per_image = [{k: [float("inf") if r[n][k] is None else r[n][k] for n in names]
                  for k in ("psnr", "psnr_gray", "cf", "cf_true")} for r in rows]
    return {"photos": len(names), **_rounded(evaluator.bootstrap(*per_image))}


def calibrated(measurements: list[dict]) -> dict:
    """The chroma calibration's rule (BENCHMARKS.md): of one checkpoint measured at several
    chroma scales, the one with the smallest delta-CF whose PSNR gain over gray is still
    >= 0; where no scale keeps the gain, the one with the largest gain."""
    gain = lambda m: m["psnr"] - m["gray"]["psnr"]  # noqa: E731
    keeping = [m for m in measurements if gain(m) >= 0]
    return min(keeping, key=lambda m: m["delta_cf"]) if keeping else max(measurements, key=gain)


def matched(measurements: list[dict], psnr: float) -> dict:
    """Of one checkpoint measured at several chroma scales, the one whose PSNR is nearest
    `psnr` (another model's): their delta-CFs then compare colour at equal PSNR, a point
    on each frontier, where the calibration rule compares wherever each run's gain over
    gray happens to cross 0."""
    return min(measurements, key=lambda m: abs(m["psnr"] - psnr))


def model_spec(spec: str) -> tuple[Path, int | None, float | None]:
    """RUN[:STEP][@CHROMA] (RUN: a run directory or a starter-format `.npz`) -> its parts."""
    spec_run, _, chroma = spec.partition("@")
    run, _, step = spec_run.partition(":")
    return Path(run), int(step) if step else None, float(chroma) if chroma else None


def model_reports(workdir: Path, model: Path) -> Path:
    """Where a model file's reports go: WORKDIR/models/STEM-HASH, the hash of its resolved
    path, so two files of one name (two `starter.npz`) never share a report."""
    digest = hashlib.sha1(str(Path(model).resolve()).encode()).hexdigest()[:8]
    return Path(workdir) / "models" / f"{Path(model).stem}-{digest}"


def _measure_spec(spec: str, photos, split: str, workdir: Path) -> dict:
    """`--against` RUN[:STEP][@CHROMA] measured on `photos` (a model file's reports:
    `model_reports`)."""
    run, step, chroma = model_spec(spec)
    reports = model_reports(workdir, run) if run.suffix == ".npz" else None
    return measure(run, step, photos, split, chroma, reports)


def _against(spec: str, theirs: dict, main: dict) -> dict:
    """An `--against` run's measurement, with the paired intervals of `main` (the variant's
    measurement at its calibrated chroma) minus it."""
    return {"run": spec, **{k: theirs[k] for k in (*METRICS, "step", "chroma")},
            "gray": theirs["gray"], "intervals": theirs["intervals"],
            "difference": paired(main["report"], theirs["report"])}


def run_variant(variant: str, args) -> dict:
    config = variant_config(variant, args)
    data = prepare_data(args, config)
    _attach(config, data, args)
    budget = quality_budget.plan(config)
    budget.apply(config)
    print(f"{variant}: {budget}", flush=True)
    name = config.quality.variant + (f"+{args.pool_name}" if args.pool_name else "")
    run_dir = Path(args.workdir) / "runs" / name
    timing = train(config, run_dir)
    final, picks = validation_picks(run_dir)
    chosen = picks.get(config.best_metric, final)
    split = "test" if args.read_test else "validation"
    if args.val_sources and not args.read_test:
        split += f":{args.val_sources}"
    chromas = [float(c) for c in args.chroma.split(",") if c]
    photos = data["test_photos"] if args.read_test else data["val_photos"]
    specs = [spec for spec in args.against.split(",") if spec]
    theirs = [_measure_spec(spec, photos, split, args.workdir) for spec in specs]
    paired_with = None
    if args.read_test:  # the test photos are read for the pick alone
        main = measure(run_dir, chosen, photos, split, chromas[0] if chromas else None)
        extra = {"test_photos": str(args.test_photos)}
    else:
        results = {s: measure(run_dir, s, data["val_photos"], split)
                   for s in sorted({final, chosen, *picks.values()})}
        main = results[chosen]
        extra = {"final": results[final],
                 "picks": {m: {"step": s, **{k: results[s][k] for k in METRICS}}
                           for m, s in picks.items()}}
        if chromas:
            extra["chroma_sweep"] = [measure(run_dir, chosen, data["val_photos"], split, c)
                                     for c in chromas]
            sweep = [main, *extra["chroma_sweep"]]
            if args.calibrate == "match":
                if not theirs:
                    raise SystemExit("--calibrate match: give the run to match in --against")
                paired_with = matched(sweep, theirs[0]["psnr"])
            else:
                paired_with = calibrated(sweep)
            extra["calibrated_chroma"] = paired_with["chroma"]
            extra["calibrated_by"] = args.calibrate
    extra["against"] = [_against(spec, m, paired_with or main) for spec, m in zip(specs, theirs)]
    images = (budget.pretrain_steps + budget.d_pretrain_steps + budget.gan_steps) \
        * int(config.batch_size)
    return common.make_result(
        f"quality/{name}", main["delta_cf"], "delta-CF", split=split,
        batch=int(config.batch_size), resolution=int(config.data.crop_size),
        chosen_by=config.best_metric, **{k: main[k] for k in METRICS}, gray=main["gray"],
        intervals=main["intervals"], step=chosen, chroma=main["chroma"], **extra,
        photos={k: main[k] for k in ("photos", "skipped_gray", "unreadable", "eval_s",
                                     "render_size", "report")},
        data=data["summary"],
        train={"wall_s": round(timing["wall_s"], 1),
               "images_per_s": round(images / max(timing["wall_s"], 1e-9), 2),
               "images": images, "tflop": round(budget.tflop, 3),
               "pretrain_stages": budget.pretrain_stages,
               "d_pretrain_steps": budget.d_pretrain_steps, "gan_steps": budget.gan_steps,
               "gflop_per_image": budget.gflop_per_image},
        config={"config": f"{QUALITY_CONFIG}:{config.quality.variant}",
                "overrides": args.overrides, "tflop_budget": float(config.quality.tflop),
                "records": config.data.train, **common.model_summary(config)})


def _quiet_libraries() -> None:
    """Orbax's and Grain's INFO lines (several per checkpoint) off the console, as
    experiments/run.py does; the loop's own progress and evaluation lines stay."""
    import logging as std_logging

    from absl import logging

    class Quiet(std_logging.Filter):
        def filter(self, record):
            noisy = any(f"{os.sep}{lib}{os.sep}" in record.pathname for lib in ("orbax", "grain"))
            return record.levelno >= std_logging.ERROR or not noisy

    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(Quiet())


def main(argv=None) -> list[dict]:
    args = _parse(argv)
    if args.table:
        print(quality_table.table(args.table, args.split))
        if args.sheets:
            quality_table.copy_sheets(args.table, Path(args.sheets), args.split)
        return []
    _quiet_libraries()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    results = []
    for variant in [v for v in args.variants.split(",") if v]:
        result = run_variant(variant, args)
        common.emit(result, args.out)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
