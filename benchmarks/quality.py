r"""Colour quality on photos a model has never seen, per config variant, at equal training FLOPs.

    bash /work/shared/data/get_photos.sh /tmp/photos      # 372 natural colour photos
    python -m benchmarks.quality --photos /tmp/photos --workdir /tmp/quality \
        --variants l1,gan,gan_rebal,gan_cf,gan_prog,gan_rebal_cf_prog
    # your own data: a records directory to train on and a folder of held-out photos
    python -m benchmarks.quality --records /data/records --test_photos /data/heldout ...
    # the GPU configuration (gan.py-sized: ResNet-101 at 224 px, batch 64, 360 PFLOP)
    python -m benchmarks.quality --photos /data/photos --variants gpu_l1,gpu_gan,gpu_gan_prog

For each variant of `experiments/configs/quality.py`:
  1. its phase lengths are derived from the FLOP budget (`benchmarks.quality_budget`),
  2. it trains through `jaxcolor.train.loop.train_and_evaluate` (what experiments/run.py
     runs) in WORKDIR/runs/VARIANT; run the command again to resume an interrupted run,
  3. checkpoints are evaluated through `Colorizer` and `jaxcolor.inference.evaluation` (what
     `jaxcolor evaluate --protocol=paper` runs: short side 256, centre crop 256, grayscale
     references skipped) on the held-out test photos, each metric beside the gray image.
One JSON line per variant (`figure` quality/VARIANT, `value` delta-CF): PSNR, SSIM, ab
MAE, AuC, CF of prediction and truth, delta-CF and the gray baseline of the checkpoint
`jaxcolor evaluate --best` picks (the run's `config.best_metric`), the same for the final
checkpoint and for the picks of every other validation metric (the checkpoint-selection
ablation, from one training), training images/s and wall time, steps and FLOPs.

Held-out photos: `--photos` is split by photo, deterministically (a hash of each file's path
below the folder): `--test_fraction` of them are the test set, never seen in training; the
rest are ingested (WORKDIR/records) with every `--val_every`-th photo held out again for
validation, which picks the best checkpoint. Test photos decide nothing but the reported
numbers. Contact sheets: WORKDIR/runs/VARIANT/eval-STEP/contact_sheet.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from benchmarks import common, quality_budget

QUALITY_CONFIG = str(common.REPO / "experiments" / "configs" / "quality.py")
ABLATION = "l1,gan,gan_rebal,gan_cf,gan_prog,gan_rebal_cf_prog"
METRICS = ("psnr", "ssim", "ab_mae", "ab_auc", "cf", "cf_true", "delta_cf")
PICK_METRICS = ("l1", "psnr", "delta_cf", "combined")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", metavar="JSONL", help="print the Markdown table of the "
                     "quality lines of a results file (the newest line per variant) and exit")
    src.add_argument("--photos", help="a folder of colour photos, split by photo into "
                     "train/validation (ingested) and test (held out)")
    src.add_argument("--records", help="a records directory to train on (its validation "
                     "split picks checkpoints); needs --test_photos")
    p.add_argument("--test_photos", help="held-out photos (with --records)")
    p.add_argument("--sheets", metavar="DIR", help="with --table: copy each variant's "
                   "contact sheet (of the checkpoint --best picks, from WORKDIR/runs) into "
                   "DIR/VARIANT.jpg at half size")
    p.add_argument("--variants", default=ABLATION, help="quality.py variants, comma list")
    p.add_argument("--workdir", default="/tmp/jaxcolor-quality", help="records, runs, reports")
    p.add_argument("--tflop", type=float, default=None, help="override config.quality.tflop")
    p.add_argument("--test_fraction", type=float, default=0.25)
    p.add_argument("--val_every", type=int, default=10)
    p.add_argument("--max_images", type=int, default=None, help="test photos to measure")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="FIELD=VALUE", help="override a config field of every variant")
    p.add_argument("--prune", action="store_true", help="delete the checkpoints no figure "
                   "came from after evaluating (~150 MB each on the CPU configuration)")
    p.add_argument("--out", default=str(common.DEFAULT_OUT),
                   help="JSON-lines file the results are appended to ('' to only print)")
    args = p.parse_args(argv)
    if args.table:
        return args
    if args.records and not args.test_photos:
        p.error("--records needs --test_photos (photos never seen in training)")
    if not 0 < args.test_fraction < 1:
        p.error("--test_fraction must be in (0, 1)")
    return args


# ---- data: a deterministic split by photo --------------------------------------------------


def is_test_photo(relative: str, fraction: float) -> bool:
    """Whether a photo (its path below the folder) is held out: by a hash, so the split
    does not depend on which other files are present or in what order they are listed."""
    digest = hashlib.sha1(relative.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_photos(folder: Path, fraction: float) -> tuple[list[Path], list[Path]]:
    from jaxcolor.data import images

    paths = images.find_images(folder)
    test = [p for p in paths if is_test_photo(str(p.relative_to(folder)), fraction)]
    held = set(test)
    return [p for p in paths if p not in held], test


def training_records(folder: Path, train: list[Path], workdir: Path, *, size: int,
                     val_every: int) -> Path:
    """The training photos ingested at `size` (once; reused while the split is the same)."""
    from jaxcolor.data import ingest

    out = workdir / f"records-{size}"
    listing = sorted(str(p.relative_to(folder)) for p in train)
    stamp = out / "photos.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == listing:
        return out
    links = workdir / "train_photos"
    shutil.rmtree(links, ignore_errors=True)
    for rel in listing:
        (links / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink((folder / rel).absolute(), links / rel)
    summary = ingest.ingest_images(links, out, size=size, val_every=val_every, overwrite=True)
    print(summary.format(), flush=True)
    stamp.write_text(json.dumps(listing))
    return out


# ---- one variant: plan, train, evaluate ----------------------------------------------------


def variant_config(variant: str, records: Path, args):
    config = common.load_config(f"{QUALITY_CONFIG}:{variant}")
    common.apply_overrides(config, args.overrides)
    if args.tflop is not None:
        config.quality.tflop = args.tflop
    config.data.train = str(records)
    config.data.build_demo = False
    return config


def train(config, run_dir: Path) -> dict:
    """Train (or resume) to the end; wall time and images summed over every call."""
    import jax

    from jaxcolor.train import loop

    if config.compilation_cache:  # as experiments/run.py: compiled steps reused on reruns
        jax.config.update("jax_compilation_cache_dir",
                          os.path.expanduser(config.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    timing_file = run_dir / "train_timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {"wall_s": 0.0}
    if _finished(config, run_dir):  # measured before: evaluate again without a restart
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
    """(final step, {metric: the step its validation score picks}) of a finished run."""
    from jaxcolor import checkpoints

    scores, metas = {}, checkpoints.read_metas(checkpoints.checkpoint_dir(run_dir))
    for step, meta in metas.items():
        if meta.get("metrics"):
            summary = checkpoints.recorded_summary(meta["metrics"])
            scores[step] = {m: checkpoints.score(summary, m) for m in PICK_METRICS}
    steps = sorted(metas)
    picks = {m: min(scores, key=lambda s: scores[s][m]) for m in PICK_METRICS} if scores else {}
    return steps[-1], picks


def evaluate_step(run_dir: Path, step: int, test_paths: list[Path], args) -> dict:
    """Metrics of checkpoint `step` on the test photos (paper protocol), and the baseline."""
    from jaxcolor import evaluator
    from jaxcolor.inference import evaluation
    from jaxcolor.inference.colorizer import Colorizer

    colorizer = Colorizer.from_checkpoint(run_dir, step=step)
    jobs = evaluation.photo_jobs(test_paths, evaluation.Protocol("paper"))
    start = time.perf_counter()
    report = evaluation.evaluate(colorizer, jobs, max_images=args.max_images, sheet=8)
    seconds = time.perf_counter() - start
    summary = evaluation.write_report(
        run_dir / f"eval-{step}", colorizer, report,
        {"kind": "images", "protocol": "paper", "path": str(args.test_photos or args.photos)})
    model, gray = evaluator.model_and_gray(summary)
    return {"step": step, **{k: round(model[k], 4) for k in METRICS},
            "gray": {k: round(gray[k], 4) for k in METRICS},
            "photos": len(report.per_image), "skipped_gray": report.skipped_gray,
            "unreadable": len(report.unreadable), "eval_s": round(seconds, 1),
            "backend": colorizer.backend, "render_size": colorizer.render_size}


def _prune(run_dir: Path, keep: set[int]) -> None:
    """Delete the checkpoints no figure came from (~150 MB each on the CPU config)."""
    for path in (run_dir / "checkpoints").iterdir():
        if path.name.isdigit() and int(path.name) not in keep:
            shutil.rmtree(path)


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


def run_variant(variant: str, records: Path, test_paths: list[Path], args) -> dict:
    config = variant_config(variant, records, args)
    budget = quality_budget.plan(config)
    budget.apply(config)
    print(f"{variant}: {budget}", flush=True)
    run_dir = Path(args.workdir) / "runs" / config.quality.variant
    timing = train(config, run_dir)
    final, picks = validation_picks(run_dir)
    chosen = picks.get(config.best_metric, final)
    results = {s: evaluate_step(run_dir, s, test_paths, args)
               for s in sorted({final, chosen, *picks.values()})}
    if args.prune:
        _prune(run_dir, keep=set(results))
    images = (budget.pretrain_steps + budget.d_pretrain_steps + budget.gan_steps) \
        * int(config.batch_size)
    main = results[chosen]
    return common.make_result(
        f"quality/{config.quality.variant}", main["delta_cf"], "delta-CF",
        batch=int(config.batch_size), resolution=int(config.data.crop_size),
        chosen_by=config.best_metric, **{k: main[k] for k in METRICS}, gray=main["gray"],
        step=chosen, final=results[final],
        picks={m: {"step": s, **{k: results[s][k] for k in METRICS}} for m, s in picks.items()},
        test={k: main[k] for k in ("photos", "skipped_gray", "unreadable", "eval_s",
                                   "backend", "render_size")},
        train={"wall_s": round(timing["wall_s"], 1),
               "images_per_s": round(images / max(timing["wall_s"], 1e-9), 2),
               "images": images, "tflop": round(budget.tflop, 3),
               "pretrain_stages": budget.pretrain_stages,
               "d_pretrain_steps": budget.d_pretrain_steps, "gan_steps": budget.gan_steps,
               "gflop_per_image": budget.gflop_per_image},
        config={"config": f"{QUALITY_CONFIG}:{config.quality.variant}",
                "overrides": args.overrides, "tflop_budget": float(config.quality.tflop),
                "records": str(records), **common.model_summary(config)})


def _latest(path: str) -> dict[str, dict]:
    """The newest quality line per variant of a results file, in first-seen order."""
    latest = {}
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        if r.get("figure", "").startswith("quality/"):
            latest[r["figure"]] = r
    return latest


def table(path: str) -> str:
    """The ablation table of BENCHMARKS.md: per variant, the checkpoint `--best` picks, the
    final one and the combined score's pick, beside the gray image."""
    latest = _latest(path)
    rows = ["| variant | checkpoint | PSNR | SSIM | ab MAE | AuC | CF (truth) | delta-CF |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def row(name, which, m):
        rows.append(f"| {name} | {which} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
                    f"{m['ab_mae']:.2f} | {m['ab_auc']:.3f} | {m['cf']:.1f} "
                    f"({m['cf_true']:.1f}) | {m['delta_cf']:.1f} |")

    for r in latest.values():
        name = r["figure"].removeprefix("quality/")
        if not rows[2:]:
            row("gray image", "-", r["gray"])
        row(name, f"best by {r['chosen_by']} (step {r['step']})", r)
        row(name, f"final (step {r['final']['step']})", r["final"])
        pick = r["picks"].get("combined")
        if pick and pick["step"] not in (r["step"], r["final"]["step"]) \
                and set(METRICS) <= set(pick):
            row(name, f"best by combined (step {pick['step']})", pick)
    return "\n".join(rows)


def copy_sheets(path: str, workdir: Path, out: Path) -> None:
    """The contact sheet of each variant's `--best` pick, halved, as DIR/VARIANT.jpg."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for r in _latest(path).values():
        name = r["figure"].removeprefix("quality/")
        sheet = workdir / "runs" / name / f"eval-{r['step']}" / "contact_sheet.png"
        if not sheet.exists():
            print(f"{sheet}: missing; no sheet for {name}")
            continue
        with Image.open(sheet) as im:
            im.convert("RGB").reduce(2).save(out / f"{name}.jpg", quality=85)


def main(argv=None) -> list[dict]:
    args = _parse(argv)
    if args.table:
        print(table(args.table))
        if args.sheets:
            copy_sheets(args.table, Path(args.workdir), Path(args.sheets))
        return []
    _quiet_libraries()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for variant in [v for v in args.variants.split(",") if v]:
        config = variant_config(variant, Path("."), args)
        if args.photos:
            folder = Path(args.photos).absolute()
            train_paths, test_paths = split_photos(folder, args.test_fraction)
            records = training_records(folder, train_paths, workdir,
                                       size=int(config.quality.record_size),
                                       val_every=args.val_every)
        else:
            from jaxcolor.data import images

            records, test_paths = Path(args.records), images.find_images(args.test_photos)
        result = run_variant(variant, records, test_paths, args)
        common.emit(result, args.out)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
