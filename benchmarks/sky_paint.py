r"""Rainbow skies: which photos a model paints blue, cyan or magenta, side by side.

    python -m benchmarks.sky_paint --photos /data/photos,/data/more,/data/imagen_src \
        --sources bsds500,sun_hays80,urban100,imagen --models A.npz,B:3650@1.9 \
        --worst 6 --sheet OUT.jpg

A smooth sky or cloud that the model cannot place gets bands of cyan, magenta and green
(BENCHMARKS.md, "Rainbow skies"). Its measurable trace is *paint*: the share of a photo's
pixels with b* < -8 and chroma > 15 (blue, cyan and magenta). The validation photos of the
quality benchmark's pool (`quality_data.split`, the same hash) from `--sources` are
colourised by every model (run[:step][@chroma] or a starter-format `.npz`, as
`benchmarks.quality --against`) at the paper protocol's crop (short side 256, centre 256);
the `--worst` photos by the *first* model's paint are drawn one per row, truth | each model,
for a person to judge the bands (paint alone cannot tell a real blue sky from a painted
one: the truth's paint is listed beside). One JSON line: per photo and model, the paint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks import common, quality_data

AREA = "quality"
B_BELOW = -8.0
CHROMA_ABOVE = 15.0


def paint(rgb: np.ndarray) -> float:
    """The share of pixels with b* < -8 and chroma > 15 (uint8 RGB in)."""
    from jaxcolor import color

    lab = color.rgb_to_lab_np(rgb.astype(np.float32) / 255.0)
    a, b = lab[..., 1], lab[..., 2]
    return float(np.mean((b < B_BELOW) & (np.hypot(a, b) > CHROMA_ABOVE)))


def _crop(path: Path) -> np.ndarray:
    """The paper protocol's view of a photo: short side 256, centre crop 256 x 256."""
    from jaxcolor.data import images
    from jaxcolor.inference import evaluation

    return images.resize_and_crop(images.load_image_rgb(path), evaluation.PAPER_SIZE)


def _colorizer(spec: str):
    from benchmarks.quality import model_spec
    from jaxcolor.inference.colorizer import Colorizer

    run, step, chroma = model_spec(spec)
    return Colorizer.from_checkpoint(run, step=step, chroma=chroma)


def _sheet(rows: list[list[np.ndarray]], out: Path) -> None:
    from PIL import Image

    tile = rows[0][0].shape[0]
    sheet = Image.new("RGB", (tile * len(rows[0]), tile * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            sheet.paste(Image.fromarray(image), (c * tile, r * tile))
    sheet.save(out, quality=90)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", required=True, help="the quality benchmark's pool folders")
    p.add_argument("--sources", required=True, help="comma list of the pool's sources")
    p.add_argument("--models", required=True, help="comma list: RUN[:STEP][@CHROMA] or .npz")
    p.add_argument("--worst", type=int, default=6)
    p.add_argument("--sheet", required=True, help="the side-by-side JPEG to write")
    p.add_argument("--val_fraction", type=float, default=0.15)
    p.add_argument("--val_per_source", type=int, default=120)
    common.add_out_arg(p, AREA)
    args = p.parse_args(argv)

    sources = set(args.sources.split(","))
    _, val = quality_data.split(quality_data.pool([Path(r) for r in args.photos.split(",")]),
                                fraction=args.val_fraction, per_source=args.val_per_source)
    photos = [ph for ph in val if ph.source in sources]
    if not photos:
        raise SystemExit(f"--sources: no validation photos of {sorted(sources)}")
    truths = [_crop(ph.path) for ph in photos]
    specs = args.models.split(",")
    outputs = {spec: _colorizer(spec).colorize(truths) for spec in specs}
    scores = {spec: [paint(o) for o in outs] for spec, outs in outputs.items()}
    worst = sorted(range(len(photos)), key=lambda i: -scores[specs[0]][i])[:args.worst]
    _sheet([[truths[i], *(outputs[s][i] for s in specs)] for i in worst], Path(args.sheet))
    result = common.make_result(
        "sky_paint", float(np.mean(scores[specs[0]])), "share of pixels",
        photos=len(photos), models=specs, sheet=args.sheet,
        mean={s: round(float(np.mean(v)), 4) for s, v in scores.items()},
        worst=[{"photo": photos[i].key, "truth": round(paint(truths[i]), 4),
                **{s: round(scores[s][i], 4) for s in specs}} for i in worst],
        config={"photos": args.photos, "sources": sorted(sources),
                "b_below": B_BELOW, "chroma_above": CHROMA_ABOVE})
    common.emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
