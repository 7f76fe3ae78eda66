r"""A chroma gain that grows with the predicted chroma, against one scale for every pixel.

    python -m benchmarks.chroma_gain --photos /data/noes/photos,/data/more,/data/imagen_src \
        --sources imagen --model jaxcolor/inference/weights/starter.npz \
        --gammas 0.75,1.5,2 --workdir /data/q

The shipped chroma scale multiplies every pixel's predicted a/b by one factor k
(`model.chroma`). This measures the family ab * k * (|ab| / 20)^(gamma - 1)
(`color.scale_chroma`, `model.chroma_gamma`; gamma = 1: one scale) on the quality
benchmark's validation photos of `--sources` (its split, the paper protocol): for each
gamma, k is bisected (geometrically, within [0.2, 6]) until delta-CF is within
`--tolerance` of the reference's (the model at its own chroma and exponent, or another
model file at its own: `--reference`, two networks' weights compared; or the model at
another render size against itself at its own: `--render_size`), so the settings compare
PSNR at equal colourfulness; then paired bootstrap intervals against the reference. One
JSON line per gamma (every bisection step in it). No training (BENCHMARKS.md, "A chroma
gain that grows with the predicted chroma", "A mixture that no source outnumbers the
ImageNet photos in", "The render size").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import common, quality, quality_data, tables

AREA = "chroma_gain"


def _measure(model: Path, gamma: float | None, k: float | None, photos: list[Path],
             reports: Path, render_size: int | None = None) -> dict:
    """`quality.measure` at scale k with exponent gamma and render size (None: the model's
    own), with the fields the rules read."""
    m = quality.measure(model, None, photos, "validation", chroma=k, reports=reports,
                        chroma_gamma=gamma, render_size=render_size)
    return {**m, "gamma": m["chroma_gamma"], "k": round(m["chroma"], 4),
            "gain_over_gray": round(m["psnr"] - m["gray"]["psnr"], 4)}


def _kind(line: dict) -> str:
    """Which comparison a matched line is: the model at another render size (`render`),
    against another model file (`weights`), or its exponent against its own one scale
    (`gain`)."""
    config = line["config"]
    if config.get("render_size"):
        return "render"
    return "weights" if config.get("reference", config["model"]) != config["model"] else "gain"


def _matched_table(path: str, kind: str) -> str:
    lines = [r for r in tables.read(path)
             if r["figure"] == "chroma_gain_minus_scale" and _kind(r) == kind]
    newest = tables.newest(lines, lambda r: (r["config"]["model"], r["gamma"],
                                             r["matched"].get("render_size")))
    interval = lambda v, d: f"{v[0]:+.{d}f} [{v[1]:+.{d}f}, {v[2]:+.{d}f}]"  # noqa: E731
    first = {"gain": lambda r: [],
             "weights": lambda r: [Path(r["config"]["model"]).name,
                                   Path(r["config"]["reference"]).name],
             "render": lambda r: [Path(r["config"]["model"]).name,
                                  str(r["matched"]["render_size"]),
                                  str(r["reference"]["render_size"])]}[kind]
    rows = [first(r) + [f"{r['gamma']:g}", f"{r['matched']['k']:.2f}",
                        f"{r['matched']['psnr']:.2f}", f"{r['matched']['delta_cf']:.1f}",
                        interval(r["paired"]["psnr_diff"], 2),
                        interval(r["paired"]["delta_cf_diff"], 1)]
            for _, r in sorted(newest.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0))]
    head = {"gain": [], "weights": ["model", "reference"],
            "render": ["model", "render size", "reference's"]}[kind]
    return tables.markdown(head + ["gamma", "k", "PSNR", "delta-CF",
                                   "PSNR minus reference (95% CI)",
                                   "delta-CF minus reference (95% CI)"], rows)


def gain_table(path: str) -> str:
    """The newest line per model and gamma matched to the same model at its own setting: each
    exponent against the shipped one scale."""
    return _matched_table(path, "gain")


def weights_table(path: str) -> str:
    """The newest line per model and gamma matched to another model file (`--reference`):
    two networks' weights at equal colour."""
    return _matched_table(path, "weights")


def render_table(path: str) -> str:
    """The newest line per model, gamma and render size matched to the model at its own
    render size: the scale the network sees photos at, at equal colour."""
    return _matched_table(path, "render")


TABLES = {"gain": gain_table, "weights": weights_table, "render": render_table}


def _matched(model: Path, gammas: list[float], photos: list[Path], reports: Path,
             tolerance: float, config: dict, reference: dict,
             render_size: int | None = None) -> list[dict]:
    """Each gamma's k bisected (at `render_size`) to the reference's delta-CF, paired
    against the reference (a `_measure` result: this model or another at its own
    setting)."""
    results = []
    for gamma in gammas:
        lo, hi, steps = 0.2, 6.0, []
        for _ in range(10):
            k = (lo * hi) ** 0.5
            steps.append(_measure(model, gamma, k, photos, reports, render_size))
            miss = steps[-1]["delta_cf"] - reference["delta_cf"]
            if abs(miss) <= tolerance:
                break
            lo, hi = (k, hi) if miss > 0 else (lo, k)  # too little colour: a larger k
        matched = steps[-1]
        paired = quality.paired(matched["report"], reference["report"])
        results.append(common.make_result(
            "chroma_gain_minus_scale", paired["psnr_diff"][0], "dB", gamma=gamma,
            matched=matched, reference=reference, bisection=steps, paired=paired,
            config=config))
    return results


def _calibrated(model: Path, gammas: list[float], scales: list[float], photos: list[Path],
                reports: Path, config: dict) -> list[dict]:
    """Each gamma at every scale; the standing chroma rule's pick (`quality.calibrated`)."""
    results = []
    for gamma in gammas:
        points = [_measure(model, gamma, k, photos, reports) for k in scales]
        pick = quality.calibrated(points)
        results.append(common.make_result(
            "chroma_gain_calibration", pick["k"], "scale", gamma=gamma, pick=pick,
            points=points, config=config))
    return results


def _test(model: Path, against: Path, photos: list[Path], workdir: Path,
          config: dict) -> list[dict]:
    """Both model files at their own settings on the test photos, paired (model - against)."""
    new, old = (quality.measure(m, None, photos, "test", reports=quality.model_reports(
        workdir, m)) for m in (model, against))
    paired = quality.paired(new["report"], old["report"])
    return [common.make_result("chroma_gain_test", paired["psnr_diff"][0], "dB", model=new,
                               against=old, paired=paired, config=config)]


def main(argv=None) -> list[dict]:
    if tables.requested(argv, AREA, TABLES):
        return []
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", help="the quality benchmark's pool folders")
    p.add_argument("--sources", help="comma list of the pool's sources")
    p.add_argument("--model", required=True, help="RUN directory or starter-format .npz")
    p.add_argument("--gammas", help="comma list of exponents to compare")
    p.add_argument("--scales", help="comma list: measure every gamma at these scales and "
                   "pick one by the chroma rule (instead of matching delta-CF)")
    p.add_argument("--test_photos", help="read the test split: --model against --against, "
                   "each at its own setting, paired (once, for the final table)")
    p.add_argument("--against", help="with --test_photos: the model file it replaces")
    p.add_argument("--reference", help="match and pair against this model file at its own "
                   "setting (default: --model at its own)")
    p.add_argument("--render_size", type=int, help="match and pair --model at this render "
                   "size against the reference at its own")
    p.add_argument("--workdir", required=True, help="reports go to WORKDIR/models/...")
    p.add_argument("--tolerance", type=float, default=0.3, help="delta-CF match")
    p.add_argument("--val_fraction", type=float, default=0.15)
    p.add_argument("--val_per_source", type=int, default=120)
    common.add_out_arg(p, AREA)
    tables.add_args(p, AREA, TABLES)
    args = p.parse_args(argv)
    from jaxcolor import color
    from jaxcolor.data import images

    model, workdir = Path(args.model), Path(args.workdir)
    config = {"model": str(model), "pivot": color.CHROMA_GAIN_PIVOT}
    if args.test_photos:
        if not args.against:
            p.error("--test_photos needs --against")
        config.update(test_photos=args.test_photos, against=args.against)
        results = _test(model, Path(args.against), images.find_images(args.test_photos),
                        workdir, config)
    else:
        if not (args.photos and args.sources and args.gammas):
            p.error("validation needs --photos, --sources and --gammas")
        sources = set(args.sources.split(","))
        _, val = quality_data.split(quality_data.pool([Path(r) for r in args.photos.split(",")]),
                                    fraction=args.val_fraction, per_source=args.val_per_source)
        photos = sorted(ph.path for ph in val if ph.source in sources)
        if not photos:
            raise SystemExit(f"--sources: no validation photos of {sorted(sources)}")
        config.update(photos=args.photos, sources=sorted(sources), tolerance=args.tolerance)
        gammas = [float(g) for g in args.gammas.split(",")]
        reports = quality.model_reports(workdir, model)
        if args.scales:
            results = _calibrated(model, gammas, [float(k) for k in args.scales.split(",")],
                                  photos, reports, config)
        else:
            other = Path(args.reference) if args.reference else model
            config.update(reference=str(other), render_size=args.render_size)
            reference = _measure(other, None, None, photos,
                                 quality.model_reports(workdir, other))
            results = _matched(model, gammas, photos, reports, args.tolerance, config,
                               reference, args.render_size)
    for result in results:
        common.emit(result, args.out)
    return results


if __name__ == "__main__":
    main()
