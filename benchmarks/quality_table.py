"""BENCHMARKS.md's quality tables, regenerated from the committed JSON lines of
`benchmarks.quality` (one table per split; the newest line per variant)."""

from __future__ import annotations

import json
from pathlib import Path


def latest(path: str, split: str) -> dict[str, dict]:
    """The newest quality line of `split` per variant of a results file, in first-seen
    order (lines from before the split existed count as validation)."""
    found = {}
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        if r.get("figure", "").startswith("quality/") and r.get("split", "validation") == split:
            found[r["figure"]] = r
    return found


def _interval(r: dict, name: str, fmt: str) -> str:
    iv = r.get("intervals", {}).get(name)
    return f" [{fmt.format(iv[1])}, {fmt.format(iv[2])}]" if iv else ""


def table(path: str, split: str = "validation") -> str:
    """Per variant, the checkpoint its rule picks (and on validation the final one and the
    other rules' picks and the chroma calibration's scales, the calibrated one marked),
    beside the gray image, with 95 % bootstrap intervals of the PSNR gain over gray and of
    delta-CF, and the paired differences from the runs it was compared with."""
    rows = ["| variant | checkpoint | PSNR | vs gray (95% CI) | SSIM | ab MAE | AuC | "
            "CF (truth) | delta-CF (95% CI) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def row(name, which, m):
        gain = m["psnr"] - m["gray"]["psnr"] if "gray" in m else None
        rows.append(
            f"| {name} | {which} | {m['psnr']:.2f} | "
            + (f"{gain:+.2f}{_interval(m, 'psnr_gain', '{:+.2f}')}" if gain is not None
               else "") + f" | {m['ssim']:.3f} | {m['ab_mae']:.2f} | {m['ab_auc']:.3f} | "
            f"{m['cf']:.1f} ({m['cf_true']:.1f}) | "
            f"{m['delta_cf']:.1f}{_interval(m, 'delta_cf', '{:.1f}')} |")

    for r in latest(path, split).values():
        name = r["figure"].removeprefix("quality/")
        if len(rows) == 2:
            rows.append(f"| gray image | - | {r['gray']['psnr']:.2f} | 0 | "
                        f"{r['gray']['ssim']:.3f} | {r['gray']['ab_mae']:.2f} | "
                        f"{r['gray']['ab_auc']:.3f} | 0.0 ({r['gray']['cf_true']:.1f}) | "
                        f"{r['gray']['delta_cf']:.1f} |")
        at = f", chroma x{r['chroma']:g}" if r.get("chroma") else ""
        row(name, f"picked by {r['chosen_by']} (step {r['step']}{at})", r)
        if "final" in r and r["final"]["step"] != r["step"]:
            row(name, f"final (step {r['final']['step']})", r["final"])
        for rule, pick in r.get("picks", {}).items():
            if pick["step"] not in (r["step"], r.get("final", {}).get("step")):
                row(name, f"picked by {rule} (step {pick['step']})", pick)
        calibrated = r.get("calibrated_chroma")
        for m in r.get("chroma_sweep", []):
            mark = "" if m["chroma"] != calibrated else (
                " (PSNR matched)" if r.get("calibrated_by") == "match" else " (calibrated)")
            row(name, f"step {m['step']}, chroma x{m['chroma']:g}{mark}", m)
        ours = f"{name} at chroma x{calibrated:g}" if calibrated else name
        against = r.get("against", [])
        for other in [against] if isinstance(against, dict) else against:
            if "psnr" in other:
                row(other["run"], "compared on the same photos", other)
            d = other["difference"]
            rows.append(f"| {ours} minus {other['run']} | paired, "
                        f"{d['photos']} photos | {d['psnr_diff'][0]:+.2f} "
                        f"[{d['psnr_diff'][1]:+.2f}, {d['psnr_diff'][2]:+.2f}] | | | | | | "
                        f"{d['delta_cf_diff'][0]:+.1f} [{d['delta_cf_diff'][1]:+.1f}, "
                        f"{d['delta_cf_diff'][2]:+.1f}] |")
    return "\n".join(rows)


def copy_sheets(path: str, out: Path, split: str = "validation") -> None:
    """The contact sheet of each variant's pick, halved, as OUT/VARIANT.jpg."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for r in latest(path, split).values():
        name = r["figure"].removeprefix("quality/")
        sheet = Path(r["photos"]["report"]).with_name("contact_sheet.png")
        if not sheet.exists():
            print(f"{sheet}: missing; no sheet for {name}")
            continue
        with Image.open(sheet) as im:
            im.convert("RGB").reduce(2).save(out / f"{name}-{split}.jpg", quality=85)
