"""Film colourisation: flicker against frame-by-frame colourisation, and frames/s end to end.

    bash ../shared/data/get_videos.sh /tmp/videos        # real colour clips (apt-get update first)
    python -m benchmarks.video --checkpoint /tmp/video_demo_run --clips /tmp/videos \
        --max_frames 150 --throughput 640x480,1920x1080

For each colour clip (its colour is the ground truth; the model only ever sees lightness),
the first `--max_frames` frames are colourised twice with the same checkpoint, through the
same `Colorizer` and pipeline as `jaxcolor video`: with temporal consistency
(`--strength`) and frame by frame (strength 0). Lines per clip and method (`temporal`,
`frame_by_frame`, `ground_truth`):

  video/warp_error     Lai et al. 2018's E_warp on ab: the mean squared ab difference
                       between frame t and frame t-1 warped to t, with the optical flow of
                       the *ground-truth* video (Farneback, a different algorithm from the
                       DIS flow the method uses), over pixels that pass the forward-backward
                       occlusion check and lie off motion boundaries (Lai et al.'s mask,
                       `detect_occlusion` in their code); averaged over the frame pairs
                       *within a shot*
  video/warp_error_all the same over every pair, cuts included
  video/psnr           per-frame RGB PSNR against the ground truth (dB), averaged
  video/colorfulness   Hasler & Suesstrunk colourfulness, averaged over frames
  video/cdc            TCVC's colour distribution consistency (Liu et al. 2023): the
                       Jensen-Shannon divergence of the R, G and B histograms of frames t
                       and t+d, averaged over t, the channels and d in (1, 2, 4); flow-free,
                       over the whole clip as they define it (cuts included)
and `video/flicker_ratio` (temporal / frame-by-frame E_warp within shots; the target is
<= 0.5), with the ratio over all pairs beside it.

Why within shots: E_warp measures how colour moves against the motion, and across a cut
there is no motion. A pair is a cut when the ground truth's own flow explains less than
`--shot_fraction` of the frame (pixels passing the occlusion check whose lightness the
moved previous frame matches): decided on the ground truth alone, so the same pairs count
for every method. Lai et al. measure on shots (DAVIS); on a clip with cuts, the two or
three pairs across them (an E_warp a hundred times a shot's, and the same for both
methods, which both start afresh there) would otherwise decide the mean.

`--throughput WxH,...` times `colorize_video` end to end (decode an H.264 file of that
size made from a clip's frames -> colourise -> temporal -> encode H.264 CRF 18 -> assemble)
in frames/s, median of `--windows`, and `video/temporal_ms` the temporal step alone (two
DIS flows, the remaps and the blend at render size) per frame.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from benchmarks import common, tables

AREA = "video"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="run workdir or checkpoints directory")
    p.add_argument("--clips", required=True, help="a folder of colour video clips")
    p.add_argument("--max_frames", type=int, default=150)
    p.add_argument("--strength", type=float, default=0.8, help="temporal strength measured")
    p.add_argument("--render_size", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shot_fraction", type=float, default=0.5,
                   help="a frame pair whose ground-truth flow explains (occlusion check "
                   "passed, lightness matched) less than this share of the frame is a cut, "
                   "left out of E_warp")
    p.add_argument("--throughput", default="640x480,1920x1080",
                   help="WxH sizes for the end-to-end figure ('' to skip)")
    p.add_argument("--throughput_frames", type=int, default=48)
    common.add_output_args(p, AREA)
    tables.add_args(p, AREA, TABLES)
    p.set_defaults(windows=3)
    return p.parse_args(argv)


def read_clip(path: Path, max_frames: int) -> list[np.ndarray]:
    from jaxcolor.inference.video import io as video_io

    info = video_io.probe(path)
    frames = []
    for frame in video_io.Decoder(info).frames(0):
        frames.append(video_io.pixels(frame, False))
        if len(frames) == max_frames:
            break
    return frames


def colourise(colorizer, frames, strength: float, workers: int):
    from jaxcolor.inference import pipeline
    from jaxcolor.inference.video import temporal
    from jaxcolor.inference.photo import Photo

    stepper = temporal.TemporalColorizer(colorizer, temporal.Consistency(strength=strength),
                                         threads=workers)
    jobs = [pipeline.Job(str(i), lambda f=f: Photo(f), lambda rgb, _: rgb)
            for i, f in enumerate(frames)]
    try:
        return [o.value for o in pipeline.process(stepper, jobs, workers=workers)], stepper
    finally:
        stepper.close()


class TruthFlow(NamedTuple):
    """The ground truth's motion from frame t-1 to frame t: where each pixel of frame t
    was (`map_x`, `map_y`, for cv2.remap), whether it passes the forward-backward check
    and lands inside frame t-1 (`consistent`), and whether it lies on a motion boundary,
    where a smooth flow mixes two motions (`boundary`)."""

    map_x: np.ndarray
    map_y: np.ndarray
    consistent: np.ndarray
    boundary: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """The pixels E_warp counts: Lai et al.'s mask (their `detect_occlusion` leaves
        out both forward-backward failures and motion boundaries)."""
        return self.consistent & ~self.boundary


def truth_flows(frames) -> list[TruthFlow]:
    """The ground truth's motion between each pair of consecutive frames."""
    import cv2

    from jaxcolor.inference.video.temporal import motion_boundary

    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    h, w = gray[0].shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = []
    for prev, cur in zip(gray, gray[1:]):
        args = (None, 0.5, 4, 21, 3, 5, 1.1, 0)
        back = cv2.calcOpticalFlowFarneback(cur, prev, *args)
        fwd = cv2.calcOpticalFlowFarneback(prev, cur, *args)
        mx, my = gx + back[..., 0], gy + back[..., 1]
        fw = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.sum((back + fw) ** 2, -1)
        ok = err <= 0.01 * (np.sum(back**2, -1) + np.sum(fw**2, -1)) + 0.5
        ok &= (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        out.append(TruthFlow(mx, my, ok, motion_boundary(back)))
    return out


def warp_errors(frames_rgb, flows) -> np.ndarray:
    """E_warp on ab (Lab units squared) of each consecutive pair."""
    import cv2

    from jaxcolor import color

    ab = [color.rgb_to_lab_np(f)[..., 1:].astype(np.float32) for f in frames_rgb]
    errors = []
    for f, prev, cur in zip(flows, ab, ab[1:]):
        warped = cv2.remap(prev, f.map_x, f.map_y, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        errors.append(float(np.sum((cur - warped) ** 2, -1)[f.mask].mean()))
    return np.asarray(errors)


def within_shot(frames_rgb, flows, shot_fraction: float, tolerance: float = 12.0) -> np.ndarray:
    """Which pairs the ground truth's motion explains (not a cut), a bool per pair: at least
    `shot_fraction` of frame t passes the forward-backward check (motion boundaries count:
    they are motion) *and* matches frame t-1 moved by the flow within `tolerance` gray
    levels (a flow across a cut can be consistent both ways on smooth pictures; it cannot
    reproduce the next picture)."""
    import cv2

    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames_rgb]
    shot = []
    for f, prev, cur in zip(flows, gray, gray[1:]):
        moved = cv2.remap(prev, f.map_x, f.map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        explained = f.consistent & (np.abs(cur - moved) <= tolerance)
        shot.append(explained.mean() >= shot_fraction)
    return np.asarray(shot)


def colour_distribution_consistency(frames_rgb, dilations=(1, 2, 4)) -> float:
    """TCVC's CDC: mean Jensen-Shannon divergence (nats) between the 256-bin histograms of
    each RGB channel of frames t and t + d, over t, the channels and `dilations`."""
    hists = np.stack([[np.bincount(f[..., c].ravel(), minlength=256) / f[..., c].size
                       for c in range(3)] for f in frames_rgb])  # [T, 3, 256]

    def entropy_to(p, m):  # KL(p || m), with 0 log 0 = 0 (m > 0 wherever p > 0)
        return np.sum(p * np.log(np.divide(p, m, out=np.ones_like(p), where=p > 0)), axis=-1)

    per_dilation = []
    for d in dilations:
        if d >= len(hists):
            continue
        p, q = hists[:-d], hists[d:]
        m = (p + q) / 2
        per_dilation.append(float(np.mean(0.5 * entropy_to(p, m) + 0.5 * entropy_to(q, m))))
    return float(np.mean(per_dilation)) if per_dilation else float("nan")


def quality(frames_rgb, truth) -> tuple[float, float]:
    from jaxcolor import metrics

    psnr = np.mean([float(metrics.psnr(o, t, 255.0, xp=np)) for o, t in zip(frames_rgb, truth)])
    cf = np.mean([float(metrics.colorfulness(o, xp=np)) for o in frames_rgb])
    return float(psnr), float(cf)


def flicker(args, colorizer, config) -> None:
    clips = sorted(p for p in Path(args.clips).iterdir() if p.suffix.lower() in
                   (".avi", ".mp4", ".mkv", ".mov"))
    for clip in clips:
        truth = read_clip(clip, args.max_frames)
        flows = truth_flows(truth)
        shot = within_shot(truth, flows, args.shot_fraction)
        results = {"ground_truth": truth}
        for name, strength in (("temporal", args.strength), ("frame_by_frame", 0.0)):
            results[name], stepper = colourise(colorizer, truth, strength, args.workers)
        where = dict(config=config, clip=clip.name, frames=len(truth), strength=args.strength,
                     size=f"{truth[0].shape[1]}x{truth[0].shape[0]}",
                     pairs=int(shot.sum()), cuts=int((~shot).sum()))
        errors, errors_all = {}, {}
        for name, frames in results.items():
            pairs = warp_errors(frames, flows)
            errors[name] = float(pairs[shot].mean()) if shot.any() else float("nan")
            errors_all[name] = float(pairs.mean())
            psnr, cf = quality(frames, truth)
            figures = [("video/warp_error", errors[name], "ab^2"),
                       ("video/warp_error_all", errors_all[name], "ab^2"),
                       ("video/colorfulness", cf, "CF"),
                       ("video/cdc", colour_distribution_consistency(frames), "JS"),
                       ("video/psnr", psnr, "dB")]
            for figure, value, unit in figures[:4] if name == "ground_truth" else figures:
                common.emit(common.make_result(figure, round(value, 4), unit, method=name,
                                               **where), args.out)
        common.emit(common.make_result(
            "video/flicker_ratio", round(errors["temporal"] / errors["frame_by_frame"], 4),
            "ratio", ratio_all=round(errors_all["temporal"] / errors_all["frame_by_frame"], 4),
            **where), args.out)


def write_h264(path: Path, frames, width: int, height: int, fps: int = 25) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"crf": "18", "preset": "ultrafast"}
        for i, f in enumerate(frames):
            image = Image.fromarray(f).resize((width, height), Image.Resampling.BILINEAR)
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def temporal_cost(colorizer, frames, strength: float, repeats: int = 3) -> float:
    """Milliseconds per frame of the temporal step alone (flows + blend), one thread."""
    from jaxcolor.inference.video import temporal
    from jaxcolor.inference.photo import Photo, crop_render

    prepared = [colorizer.prepare(Photo(f)) for f in frames]
    L = [np.ascontiguousarray(crop_render(p.L_render, p.inner)) for p in prepared]
    ab = [np.zeros(x.shape + (2,), np.float32) for x in L]
    settings = temporal.Consistency(strength=strength)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        carry = None
        for x, pred in zip(L, ab):
            moved = temporal.flow(carry.L, x) if carry is not None else None
            carry = temporal.Carry(x, temporal.blend(carry, x, pred, moved, settings).ab)
        best = min(best, (time.perf_counter() - start) / len(L))
    return 1000 * best


def throughput(args, colorizer, config, frames) -> None:
    from jaxcolor.inference.video import film, sources, temporal

    frames = frames[:args.throughput_frames]
    for size in [s for s in args.throughput.split(",") if s]:
        width, height = (int(v) for v in size.lower().split("x"))
        work = Path(tempfile.mkdtemp(prefix="video_bench_"))
        try:
            clip = write_h264(work / "in.mp4", frames, width, height)
            source = sources.open_source(clip, Fraction(25), 2**28)
            settings = film.Settings(consistency=temporal.Consistency(args.strength))

            def window() -> int:
                report = film.colorize_video(colorizer, source, work / "out.mp4", settings,
                                             workers=args.workers, overwrite=True)
                return report.frames

            window()  # warm-up: compilation, page cache
            (rate, rates), cpu = common.cpu_usage(lambda: common.median_rate(window,
                                                                              args.windows))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        common.emit(common.make_result(
            "video/end_to_end", round(rate, 3), "frames/s", config=config,
            batch=colorizer.batch_size, resolution=colorizer.render_size, size=size,
            frames=len(frames), windows=[round(r, 3) for r in rates], cpu_share=cpu["share"],
            backend=colorizer.backend, compose=colorizer.compose, strength=args.strength),
            args.out)
    ms = temporal_cost(colorizer, frames, args.strength)
    common.emit(common.make_result(
        "video/temporal_ms", round(ms, 3), "ms/frame", config=config,
        resolution=colorizer.render_size, frames=len(frames)), args.out)


# ---- BENCHMARKS.md's tables -------------------------------------------------------------

def _checkpoint(line: dict) -> str:
    config = line["config"]
    return f"{config['checkpoint']} (step {config['step']}, render size {config['render_size']})"


def flicker_table(path: str) -> str:
    """Flicker and per-frame quality per checkpoint and clip: the newest line of each figure
    and method per (checkpoint, step, render size, clip, frames, strength), checkpoints and
    clips in the order first measured; a flicker ratio within the target (<= 0.5) in bold."""
    def key(line):
        figure = line["figure"].removeprefix("video/")
        if figure not in ("warp_error", "warp_error_all", "colorfulness", "cdc", "psnr",
                          "flicker_ratio"):
            return None
        clip = (line["clip"], line["size"], line["frames"], line["strength"], line.get("cuts"))
        return _checkpoint(line), clip, figure, line.get("method")

    clips: dict[str, dict[tuple, dict]] = {}
    for (checkpoint, clip, figure, method), line in tables.newest(tables.read(path),
                                                                  key).items():
        clips.setdefault(checkpoint, {}).setdefault(clip, {})[figure, method] = line

    def pair(found, figure, fmt):
        values = [found.get((figure, m)) for m in ("frame_by_frame", "temporal", "ground_truth")]
        if not any(values):
            return ""
        texts = [fmt(r["value"]) if r else "?" for r in values]
        return f"{texts[0]} / {texts[1]}" + (f" ({texts[2]})" if values[2] else "")

    rows = []
    for checkpoint, by_clip in clips.items():
        rows.append([f"*{checkpoint}*"] + [""] * 7)
        for (clip, size, frames, strength, cuts), found in by_clip.items():
            ratio = found.get(("flicker_ratio", None))
            ratio_text = "" if ratio is None else (
                f"**{ratio['value']:.2f}**" if ratio["value"] <= 0.5 else f"{ratio['value']:.2f}"
            ) + (f" ({ratio['ratio_all']:.2f})" if "ratio_all" in ratio else "")
            label = f"{clip} ({size}, {frames} frames, strength {strength}" + (
                f"; {cuts} cuts)" if cuts else ")")
            rows.append([label, *(f"{found[('warp_error', m)]['value']:.2f}"
                                  if ("warp_error", m) in found else ""
                                  for m in ("ground_truth", "frame_by_frame", "temporal")),
                         ratio_text, pair(found, "psnr", lambda v: f"{v:.2f}"),
                         pair(found, "colorfulness", lambda v: f"{v:.2f}"),
                         pair(found, "cdc", lambda v: f"{v:.4f}")])
    return tables.markdown(
        ["Clip", "E_warp ground truth", "E_warp frame by frame", "E_warp temporal",
         "ratio (all pairs)", "PSNR frame by frame / temporal (dB)",
         "CF frame by frame / temporal (truth)", "CDC frame by frame / temporal (truth)"], rows)


def throughput_table(path: str) -> str:
    """`jaxcolor video` end to end in frames/s per film size: the newest line per
    (checkpoint, step, render size, backend, batch, device, size, frames), on an accelerator
    or a quiet CPU, in the order first measured."""
    def key(line):
        if line["figure"] != "video/end_to_end" or (
                line["device_kind"] == "cpu" and not tables.on_quiet_cpu(line)):
            return None
        return (line["size"], _checkpoint(line), line["backend"], line["batch"],
                line["device_kind"], line["frames"])

    rows = [[f"{size}", f"{checkpoint}, {backend}, batch {batch}, {frames} frames ({device})",
             tables.num(r["value"]), f"{r['cpu_share']:.2f}"]
            for (size, checkpoint, backend, batch, device, frames), r in
            tables.newest(tables.read(path), key).items()]
    return tables.markdown(["Size", "Run", "frames/s", "CPU share"], rows)


TABLES = {"flicker": flicker_table, "throughput": throughput_table}


def main(argv=None) -> None:
    if tables.requested(argv, AREA, TABLES):
        return
    from jaxcolor.inference.colorizer import Colorizer

    args = _parse(argv)
    colorizer = Colorizer.from_checkpoint(args.checkpoint, render_size=args.render_size,
                                          batch_size=args.batch_size, backend="auto")
    config = {"checkpoint": str(args.checkpoint), "step": colorizer.step,
              "render_size": colorizer.render_size, "backend": colorizer.backend,
              **common.model_summary(colorizer.config)}
    flicker(args, colorizer, config)
    if args.throughput:
        clip = sorted(p for p in Path(args.clips).iterdir() if p.suffix.lower() == ".avi")[-1]
        throughput(args, colorizer, config, read_clip(clip, args.throughput_frames))


if __name__ == "__main__":
    main()
