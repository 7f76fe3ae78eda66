r"""Colour hints: quality against the number of hints, Zhang et al. (2017)'s sweep.

    python -m benchmarks.hints --photos /data/q/val-photos --counts 0,1,2,5,10,20,50,100
    python -m benchmarks.hints --checkpoint RUN --photos /data/imagenet --split test
    python -m benchmarks.hints --table

Each photo is measured as `jaxcolor evaluate --protocol=paper` measures (short side 256,
centre crop 256 x 256, grayscale references skipped). For N hints, N points are drawn
uniformly at random in the crop; each is a hint of radius 3 (a 6 x 6 patch, as Zhang et
al.'s sweep) whose colour is the true mean colour over the 6 x 6 patch at that point,
`--draws` independent draws per photo and N (the same draws for every model: they depend on
the photo and the seed only). Per N: the evaluator's PSNR, delta-CF and |ab| error with
paired bootstrap 95 % intervals over photos, beside the gray image's and (paired, per photo)
against the same model with no hints (`vs_0`: the issue's "+3 dB at 10 hints"), and with
`--against MODEL` against another model given the same hints (`vs_against`). One JSON
line per N (`figure` hints/N, `value` PSNR). `--sheet OUT.jpg`: gray | automatic | with
`--sheet_hints` hints (marked) | true for the first `--sheet_rows` photos, to look at.
Their reference curve on ImageNet (their model): 24.43 dB at 0 hints, 25.37 at 1, 28.42 at
10, 31.13 at 100.
"""

from __future__ import annotations

import argparse
import math
import zlib
from pathlib import Path

import numpy as np

from benchmarks import common, tables

AREA = "hints"
PATCH = 6  # pixels: a hint is the mean colour of a PATCH x PATCH square of the truth


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="run, or a starter .npz file (default: "
                   "the starter model that ships)")
    p.add_argument("--against", default=None, help="another run or .npz (`starter`: the one "
                   "that ships) given the same hints: paired PSNR and delta-CF per N")
    p.add_argument("--photos", help="folder of colour photos")
    p.add_argument("--split", default="validation", help="what the photos are (recorded)")
    p.add_argument("--counts", default="0,1,2,5,10,20,50,100")
    p.add_argument("--draws", type=int, default=2, help="hint draws per photo and count")
    p.add_argument("--max_images", type=int, default=None)
    p.add_argument("--spread", metavar="SPATIAL:SIGMA_L:DECAY[:REACH],...", default="",
                   help="a grid over jaxcolor.inference.spread's constants instead of the "
                   "shipped ones: one sweep per setting, lines hints_grid/N")
    p.add_argument("--sheet", metavar="OUT.jpg", help="a contact sheet of hinted photos")
    p.add_argument("--sheet_rows", type=int, default=8)
    p.add_argument("--sheet_hints", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--locality", action="store_true", help="instead of the sweep: one "
                   "red hint per photo, and how far its colour reaches (line hints_locality)")
    p.add_argument("--plot", metavar="OUT.png", help="draw PSNR against the number of hints "
                   "from --out's lines (each split's sweep, the gray image, Zhang et al.'s "
                   "reference) and exit")
    common.add_out_arg(p, AREA)
    tables.add_args(p, AREA, TABLES)
    args = p.parse_args(argv)
    if not args.photos and not args.plot:
        p.error("--photos is needed (or --table, or --plot)")
    return args


def draw_hints(true_rgb: np.ndarray, count: int, rng: np.random.Generator) -> list:
    """`count` hints at random places of a photo, each the mean true colour of the PATCH x
    PATCH square there."""
    from jaxcolor.inference.hints import Hint

    h, w = true_rgb.shape[:2]
    out = []
    for _ in range(count):
        y, x = int(rng.integers(0, h - PATCH + 1)), int(rng.integers(0, w - PATCH + 1))
        mean = true_rgb[y:y + PATCH, x:x + PATCH].reshape(-1, 3).mean(0)
        out.append(Hint(x + PATCH / 2 - 0.5, y + PATCH / 2 - 0.5,
                        "#" + "".join(f"{int(round(c)):02x}" for c in mean), PATCH / 2))
    return out


def references(paths: list[Path], max_images: int | None) -> list[tuple[str, np.ndarray]]:
    """(name, the paper protocol's 256 x 256 crop) of the colour photos among `paths`."""
    from jaxcolor.data import images
    from jaxcolor.inference import evaluation

    protocol, out = evaluation.Protocol("paper"), []
    for path in paths:
        try:
            out.append((str(path), protocol.checked(images.load_image_rgb(path, min_size=256))))
        except (images.ImageDecodeError, evaluation.GrayTruth):
            continue
        if max_images and len(out) == max_images:
            break
    return out


def sweep(colorizer, photos, counts, draws: int, seed: int) -> dict[int, dict]:
    """Per N: the evaluator's per-image metrics (each photo's mean over the draws)."""
    from jaxcolor import evaluator

    results = {}
    for count in counts:
        per_draw = []
        for draw in range(draws if count else 1):
            given = [draw_hints(true, count, np.random.default_rng(
                [seed, draw, count, zlib.crc32(name.encode())])) for name, true in photos]
            coloured = colorizer.colorize([true for _, true in photos],
                                          hints=[g or None for g in given])
            per_draw.append(evaluator.image_metrics(np.stack(coloured)[..., :3],
                                                    np.stack([t for _, t in photos]), xp=np))
        results[count] = {k: np.mean([d[k] for d in per_draw], axis=0) for k in per_draw[0]}
    return results


RED = "#c81e1e"
NEAR, FAR = 6, 64  # pixels of the 256 x 256 crop: "at the hint" and "far from it"


def locality(colorizer, photos, seed: int) -> dict[str, np.ndarray]:
    """Per photo, one red hint (radius 3) at a random place: the mean |ab| change against no
    hint within NEAR pixels of it (`near`: does the hint take) and beyond FAR pixels
    (`far`: does it leak). The issue's round trip, "a hint of red ... leaves far regions as
    they were", as a figure over real photos."""
    from jaxcolor import color
    from jaxcolor.inference.hints import Hint

    near, far = [], []
    for name, true in photos:
        rng = np.random.default_rng([seed, 1 << 21, zlib.crc32(name.encode())])
        y, x = (int(v) for v in rng.integers(16, 240, 2))
        plain, hinted = colorizer.colorize([true, true], hints=[None, [Hint(x, y, RED, 3)]])
        change = np.linalg.norm(color.rgb_to_lab_np(hinted[..., :3] / 255.0)[..., 1:]
                                - color.rgb_to_lab_np(plain[..., :3] / 255.0)[..., 1:], axis=-1)
        distance = np.hypot(*np.meshgrid(np.arange(256) - y, np.arange(256) - x,
                                         indexing="ij"))
        near.append(change[distance <= NEAR].mean())
        far.append(change[distance > FAR].mean())
    return {"near": np.array(near), "far": np.array(far)}


def _locality_line(args, measured: dict[str, np.ndarray], photos: int) -> dict:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, photos, (2000, photos))
    intervals = {k: [round(float(v.mean()), 3),
                     *(round(float(q), 3) for q in np.percentile(v[rows].mean(1), [2.5, 97.5]))]
                 for k, v in measured.items()}
    return common.make_result(
        "hints_locality", intervals["far"][0], "ab", resolution=256, split=args.split,
        near=intervals["near"][0], intervals=intervals, photos=photos,
        config={"checkpoint": args.checkpoint or "starter", "photos": args.photos,
                "seed": args.seed, "hint": RED, "near_px": NEAR, "far_px": FAR,
                "spread": _constants()})


def sheet(colorizer, photos, count: int, seed: int):
    """gray | automatic | `count` hints (ringed) | true, one row per photo, 192 px tiles."""
    from PIL import Image, ImageDraw

    from jaxcolor import evaluator

    tile = 192
    out = Image.new("RGB", (4 * tile, len(photos) * tile), (255, 255, 255))
    for row, (name, true) in enumerate(photos):
        given = draw_hints(true, count, np.random.default_rng([seed, 1 << 20, zlib.crc32(
            name.encode())]))
        automatic, hinted = colorizer.colorize([true, true], hints=[None, given])
        marked = Image.fromarray(hinted[..., :3])
        pen = ImageDraw.Draw(marked)
        for h in given:
            r = h.radius + 3
            pen.ellipse([h.x - r, h.y - r, h.x + r, h.y + r], outline=(255, 255, 255), width=2)
            pen.ellipse([h.x - r - 2, h.y - r - 2, h.x + r + 2, h.y + r + 2], outline=(0, 0, 0))
        gray = evaluator.gray_image(true, xp=np).astype(np.uint8)
        for col, im in enumerate((Image.fromarray(gray), Image.fromarray(automatic[..., :3]),
                                  marked, Image.fromarray(true))):
            out.paste(im.resize((tile, tile), Image.Resampling.LANCZOS), (col * tile, row * tile))
    return out


def main(argv=None) -> list[dict] | None:
    if tables.requested(argv, AREA, TABLES):
        return None
    args = _parse(argv)
    if args.plot:
        plot(args.out).save(args.plot)
        return None
    from jaxcolor.data import images

    colorizer = _colorizer(args.checkpoint)
    other = None if args.against is None else _colorizer(args.against)
    photos = references(images.find_images(args.photos), args.max_images)
    counts = [int(c) for c in args.counts.split(",")]
    if args.sheet:
        sheet(colorizer, photos[:args.sheet_rows], args.sheet_hints, args.seed).save(
            args.sheet, quality=88)
    settings = [tuple(float(v) for v in s.split(":")) for s in args.spread.split(",") if s]
    out = []
    for setting in settings or [None]:
        if setting is not None:
            _set_spread(*setting)
        if args.locality:
            out.append(_locality_line(args, locality(colorizer, photos, args.seed),
                                      len(photos)))
            common.emit(out[-1], args.out)
            continue
        measured = sweep(colorizer, photos, counts, args.draws, args.seed)
        theirs = None if other is None else sweep(other, photos, counts, args.draws, args.seed)
        for count, per_image in measured.items():
            out.append(_line(args, count, per_image, measured.get(0), len(photos), setting,
                             None if theirs is None else theirs[count]))
            common.emit(out[-1], args.out)
    return out


def _colorizer(checkpoint: str | None):
    """The model measured: a run, a model file, or (None, "starter") the shipped starter."""
    from jaxcolor.inference.colorizer import Colorizer

    return Colorizer.from_checkpoint(None if checkpoint == "starter" else checkpoint)


def _constants() -> dict:
    from jaxcolor.inference import spread

    return {"spatial": spread.SPATIAL, "sigma_l": spread.SIGMA_L, "decay": spread.DECAY,
            "reach": spread.REACH if math.isfinite(spread.REACH) else None}


def _set_spread(spatial: float, sigma_l: float, decay: float,
                reach: float = float("inf")) -> None:
    """Sets spread's constants and drops the compiled forward that captured the old ones."""
    from jaxcolor.inference import colorizer, spread

    spread.SPATIAL, spread.SIGMA_L, spread.DECAY, spread.REACH = spatial, sigma_l, decay, reach
    colorizer.forward.clear_cache()


def _line(args, count: int, per_image: dict, none: dict | None, photos: int, setting,
          theirs: dict | None = None) -> dict:
    """The JSON line of one count: summary, intervals (and, paired, against 0 hints when
    measured and against `--against`'s model given the same hints)."""
    from jaxcolor import evaluator

    summary = evaluator.summarize(dict(per_image))
    intervals = evaluator.bootstrap(per_image)
    if none is not None:
        paired = evaluator.bootstrap(per_image, none)
        intervals["vs_0"] = paired["psnr_diff"]
        intervals["delta_cf_vs_0"] = paired["delta_cf_diff"]
    if theirs is not None:
        paired = evaluator.bootstrap(per_image, theirs)
        intervals["vs_against"] = paired["psnr_diff"]
        intervals["delta_cf_vs_against"] = paired["delta_cf_diff"]
    return common.make_result(
        f"{'hints' if setting is None else 'hints_grid'}/{count}", round(summary["psnr"], 4),
        "dB", resolution=256, split=args.split, psnr_gray=round(summary["psnr_gray"], 4),
        delta_cf=round(summary["delta_cf"], 4), ab_mae=round(summary["ab_mae"], 4),
        cf=round(summary["cf"], 4), cf_true=round(summary["cf_true"], 4),
        intervals={k: [round(x, 4) for x in v] for k, v in intervals.items()},
        photos=photos, draws=args.draws if count else 1,
        config={"checkpoint": args.checkpoint or "starter", "photos": args.photos,
                "seed": args.seed, "patch": PATCH, "against": args.against,
                "spread": _constants()})


def _sweep_lines(path: str, split: str) -> tuple[str | None, dict[int, dict]]:
    """The model measured last on `split`'s photos and its newest sweep line per N."""
    lines = [r for r in tables.read(path)
             if r["figure"].startswith("hints/") and r["split"] == split]
    if not lines:
        return None, {}
    model = lines[-1]["config"]["checkpoint"]
    return model, tables.newest(lines, lambda r: int(r["figure"].split("/")[1]) if (
        r["config"]["checkpoint"] == model) else None)


def _sweep_table(path: str, split: str) -> str:
    """The sweep of `split`'s photos: the newest line per N of the model measured last."""
    model, chosen = _sweep_lines(path, split)
    if not chosen:
        return ""
    rows = []
    for count in sorted(chosen):
        r = chosen[count]
        iv = r["intervals"]
        vs_0 = iv.get("vs_0")
        rows.append([str(count), f"{r['value']:.2f} [{iv['psnr'][1]:.2f}, {iv['psnr'][2]:.2f}]",
                     f"{iv['psnr_gain'][0]:+.2f}",
                     f"{vs_0[0]:+.2f} [{vs_0[1]:+.2f}, {vs_0[2]:+.2f}]" if vs_0 else "",
                     f"{r['delta_cf']:.1f} [{iv['delta_cf'][1]:.1f}, {iv['delta_cf'][2]:.1f}]",
                     f"{r['ab_mae']:.2f}"])
    return tables.markdown([f"hints ({model}, {split})", "PSNR (95% CI)", "vs gray",
                            "vs 0 hints (95% CI)", "delta-CF (95% CI)", "ab error"], rows)


def validation_sweep(path: str) -> str:
    """PSNR, its gain over the gray image and over 0 hints, delta-CF and |ab| error against
    the number of hints, with 95 % intervals, on validation photos: the newest line per N of
    the model measured last on them."""
    return _sweep_table(path, "validation")


def test_sweep(path: str) -> str:
    """The same on the test photos (read once, for the final table)."""
    return _sweep_table(path, "test")


def grid(path: str) -> str:
    """The spread grid: PSNR gain over 0 hints per setting and N, and where a locality line
    of the setting exists, how far one red hint leaks (the newest line of each)."""
    lines = tables.read(path)

    def setting(r):
        spread = r["config"]["spread"]
        return (*(spread[k] for k in ("spatial", "sigma_l", "decay")), spread.get("reach"))

    chosen = tables.newest([r for r in lines if r["figure"].startswith("hints_grid/")],
                           lambda r: (setting(r), int(r["figure"].split("/")[1])))
    def measured_on(r):
        return r["config"]["checkpoint"], r["config"].get("photos"), r["split"]

    grid_photos = {measured_on(r) for r in lines if r["figure"].startswith("hints_grid/")}
    leaks = tables.newest([r for r in lines if r["figure"] == "hints_locality"
                           and "spread" in r["config"] and measured_on(r) in grid_photos],
                          setting)  # measured on the grid's own model and photos
    settings = list(dict.fromkeys(k[0] for k in chosen))
    counts = sorted({k[1] for k in chosen if k[1]})
    rows = [[f"{s[0]:g}", f"{s[1]:g}", f"{s[2]:g}", "-" if s[3] is None else f"{s[3]:g}",
             *(f"{chosen[(s, n)]['intervals']['vs_0'][0]:+.2f}" if (s, n) in chosen else ""
               for n in counts),
             f"{leaks[s]['value']:.1f}" if s in leaks else ""] for s in settings]
    return tables.markdown(["SPATIAL", "SIGMA_L", "DECAY", "REACH",
                            *(f"+dB at {n}" for n in counts), f"one hint: ab change beyond "
                            f"{FAR} px"], rows)


ZHANG_2017 = {0: 24.43, 1: 25.37, 10: 28.42, 100: 31.13}
"""Zhang et al. 2017's PSNR against N hints on ImageNet (their model, their Fig. 6)."""


def plot(path: str):
    """PSNR against N hints (categorical axis), one curve with 95 % intervals per split's
    sweep as the tables choose it, each split's gray image dashed, and Zhang et al.'s
    reference points: a PIL image."""
    from PIL import Image, ImageDraw, ImageFont

    series = []
    for split, colour in (("validation", (120, 160, 220)), ("test", (200, 60, 40))):
        model, chosen = _sweep_lines(path, split)
        if chosen:
            last = chosen[max(chosen)]
            series.append((f"{model}, {split} ({last['photos']} photos)", colour,
                           {n: r["intervals"]["psnr"] for n, r in sorted(chosen.items())},
                           last["psnr_gray"]))
    counts = sorted({n for _, _, points, _ in series for n in points} | set(ZHANG_2017))
    width, height, left, right, top, bottom = 760, 460, 64, 24, 24, 120
    values = [v for _, _, points, gray in series for iv in points.values() for v in iv]
    values += [gray for *_, gray in series] + list(ZHANG_2017.values())
    low, high = np.floor(min(values)) - 0.5, np.ceil(max(values)) + 0.5
    font = ImageFont.load_default(size=14)
    im = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(im)

    def xy(count, db):
        x = left + (counts.index(count) + 0.5) * (width - left - right) / len(counts)
        return x, top + (high - db) / (high - low) * (height - top - bottom)

    for db in range(int(low) + 1, int(high) + 1):
        y = xy(counts[0], db)[1]
        pen.line([(left, y), (width - right, y)], fill=(232, 232, 232))
        pen.text((left - 8, y), f"{db}", fill="black", font=font, anchor="rm")
    for n in counts:
        pen.text((xy(n, low)[0], height - bottom + 8), str(n), fill="black", font=font,
                 anchor="mt")
    pen.text(((left + width - right) / 2, height - bottom + 28), "hints (N)", fill="black",
             font=font, anchor="mt")
    pen.text((8, top - 16), "PSNR (dB)", fill="black", font=font)
    legend = height - bottom + 52
    for i, (label, colour, points, gray) in enumerate(series):
        y = xy(counts[0], gray)[1]
        for x in range(left, width - right, 12):
            pen.line([(x, y), (x + 6, y)], fill=colour, width=1)
        path_xy = [xy(n, iv[0]) for n, iv in points.items()]
        pen.line(path_xy, fill=colour, width=3)
        for n, (mid, lo, hi) in points.items():
            x, _ = xy(n, mid)
            pen.line([(x, xy(n, lo)[1]), (x, xy(n, hi)[1])], fill=colour, width=1)
            pen.ellipse([x - 4, xy(n, mid)[1] - 4, x + 4, xy(n, mid)[1] + 4], fill=colour)
        pen.line([(left, legend + 9 + 18 * i), (left + 24, legend + 9 + 18 * i)], fill=colour,
                 width=3)
        pen.text((left + 32, legend + 18 * i), f"{label}; dashed: its gray image", fill="black",
                 font=font)
    for n, db in ZHANG_2017.items():
        x, y = xy(n, db)
        pen.rectangle([x - 4, y - 4, x + 4, y + 4], outline="black", width=2)
    i = len(series)
    pen.rectangle([left + 8, legend + 5 + 18 * i, left + 16, legend + 13 + 18 * i],
                  outline="black", width=2)
    pen.text((left + 32, legend + 18 * i), "Zhang et al. 2017 on ImageNet (their model)",
             fill="black", font=font)
    return im


def locality_table(path: str) -> str:
    """One red hint per photo: the mean |ab| change near it and far from it, with 95 %
    intervals: the newest line per model, split and photo set."""
    lines = [r for r in tables.read(path) if r["figure"] == "hints_locality"]
    if not lines:
        return ""
    chosen = tables.newest(lines, lambda r: (r["config"]["checkpoint"], r["split"],
                                             r["config"].get("photos")))
    rows = [[f"{model} ({split}, {r['photos']} photos)",
             *(f"{iv[0]:.1f} [{iv[1]:.1f}, {iv[2]:.1f}]" for iv in (
                 r["intervals"]["near"], r["intervals"]["far"]))]
            for (model, split, _), r in chosen.items()]
    return tables.markdown(["model", f"ab change within {NEAR} px (95% CI)",
                            f"beyond {FAR} px (95% CI)"], rows)


TABLES = {"validation": validation_sweep, "test": test_sweep, "grid": grid,
          "locality": locality_table}


if __name__ == "__main__":
    main()
