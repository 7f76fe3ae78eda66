"""`jaxcolor video`: colourise a film, or a folder of numbered frames, without flicker.

The output keeps the input's size, frame count, time stamps and audio (copied unchanged);
every frame keeps its own lightness. Colour is carried along the motion between frames
(`jaxcolor.inference.video.temporal`; `--temporal=0` colours each frame on its own). An
interrupted run is resumed by running the same command again (`OUTPUT.partial/` holds the
finished segments). Exit status: 0 done, 1 the run failed or frames of the input could not
be decoded (the rest is written), 2 nothing ran (bad flags, checkpoint or input), 130
interrupted (finished segments are kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from fractions import Fraction
from pathlib import Path

from jaxcolor import errors
from jaxcolor.cli import common

HELP = "colourise a film (or a folder of frames) with temporal consistency; audio kept"
EXAMPLES = common.examples(
    "jaxcolor video --checkpoint=/runs/gan101 --input=film.mp4 --output=film_colour.mp4",
    "jaxcolor video --checkpoint=/runs/gan101 --input=reel.mkv --output=reel_colour.mkv \\\n"
    "      --codec=ffv1 --render_size=320",
    "jaxcolor video --checkpoint=/runs/gan101 --input=scans/ --fps=24 --output=frames_colour")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcolor.inference.files import DEFAULT_MAX_PIXELS
    from jaxcolor.inference.video.film import DEFAULT_SEGMENT_FRAMES

    common.add_checkpoint_flags(parser)
    common.add_colorizer_flags(parser)
    parser.add_argument("--input", required=True,
                        help="a video file (anything FFmpeg reads), a folder of frames, or a "
                             "folder of films (each coloured into --output, a folder)")
    parser.add_argument("--output", required=True,
                        help="a .mp4, .mov or .mkv file, or a folder for PNG frames (or for "
                             "the films of a folder)")
    parser.add_argument("--codec", choices=("h264", "h265", "ffv1"), default="h264",
                        help="video codec (ffv1: lossless RGB, in .mkv)")
    parser.add_argument("--crf", type=int, default=18,
                        help="quality of h264/h265, 0..51, lower is better (default 18)")
    parser.add_argument("--preset", default="medium",
                        help="x264/x265 speed preset (ultrafast .. veryslow)")
    parser.add_argument("--lossless", action="store_true",
                        help="exact RGB frames (h264 through libx264rgb, or ffv1)")
    parser.add_argument("--temporal", type=float, default=0.8,
                        help="weight of the colour carried along the motion, 0..<1 "
                             "(0: each frame on its own)")
    parser.add_argument("--fps", default="24",
                        help="frame rate of a folder of frames (e.g. 24, 24000/1001)")
    parser.add_argument("--segment_frames", type=int, default=DEFAULT_SEGMENT_FRAMES,
                        help="frames per resumable segment")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output and start again")
    parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse larger frames of a folder")
    common.add_shard_flag(parser)
    parser.add_argument("--hints", metavar="FILE.json",
                        help="colour hints: {film (its name, or its path in a folder of "
                             "films): [{\"frame\", \"x\", \"y\", \"color\", \"radius\"}, ...]}; "
                             "a hint holds through its shot")


def _fps(text: str) -> Fraction:
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        fps = Fraction(0)
    if fps <= 0:
        raise errors.UsageError(f"--fps {text}: expected a positive rate, e.g. 24 or "
                                "24000/1001")
    return fps


def run(args: argparse.Namespace) -> int:
    from jaxcolor.inference import hints
    from jaxcolor.inference.shards import Shard
    from jaxcolor.inference.video import archive, film, sources, temporal
    from jaxcolor.inference.video.io import Codec

    common.check_positive(batch_size=args.batch_size, render_size=args.render_size,
                          workers=args.workers, segment_frames=args.segment_frames,
                          max_pixels=args.max_pixels)
    settings = film.Settings(
        codec=Codec(args.codec, args.crf, args.preset, args.lossless),
        consistency=temporal.Consistency(strength=args.temporal),
        segment_frames=args.segment_frames, fps=_fps(args.fps))
    errors.require("av", "video"), errors.require("cv2", "video")
    path, output = Path(args.input).expanduser(), Path(args.output).expanduser()
    shard = Shard.parse(args.shard)
    given = {} if args.hints is None else hints.load_file(args.hints, film=True)
    if path.is_dir() and archive.find_films(path):
        return _run_archive(args, path, output, settings, shard, given)
    if not shard.whole:
        raise errors.UsageError(f"--shard splits a folder of films; {path} is one film")
    unknown = sorted(set(given) - {path.name})
    if unknown:
        raise hints.HintError(f"{args.hints}: {unknown[0]!r} is not the input ({path.name})")
    settings = dataclasses.replace(settings, hints=tuple(given.get(path.name, ())))
    source = sources.open_source(path, settings.fps, args.max_pixels)
    film.output_kind(output)
    film.check_hints(source, settings.hints, args.hints or "")
    colorizer = common.load_colorizer(args)
    info = source.info
    print(f"checkpoint step {colorizer.step}, render size {colorizer.render_size}, backend "
          f"{colorizer.backend}; {info.path}: {info.frames} frames {info.width}x{info.height}"
          f" at {float(info.rate):.3f} fps", file=sys.stderr, flush=True)
    bar = common.ProgressBar("video", unit=" frames/s")
    try:
        report = film.colorize_video(colorizer, source, output, settings,
                                     workers=args.workers, overwrite=args.overwrite,
                                     progress=bar)
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: finished segments are kept in {output}.partial; run the same "
              "command to continue", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    finally:
        bar.close()
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.skipped:
        print(f"{output} exists: nothing to do (--overwrite to colourise it again)")
        return errors.EXIT_OK
    resumed = f", {report.resumed} from earlier runs" if report.resumed else ""
    rate = (report.frames - report.resumed) / max(report.seconds, 1e-9)
    print(f"done {report.frames} frames{resumed} in {report.seconds:.1f} s ({rate:.2f} "
          f"frames/s); {report.cuts} scene cuts, mean carried colour {report.carried:.2f}; "
          f"output {output}")
    return errors.EXIT_OK


def _run_archive(args, directory: Path, output: Path, settings, shard, given: dict) -> int:
    """A folder of films: each coloured as one film is, this machine's shard of them."""
    from jaxcolor.inference.video import archive

    archive.check_hint_names(directory, given, args.hints or "")
    colorizer = common.load_colorizer(args)
    bars = []

    def progress(path):
        if bars:
            bars[-1].close()
        bars.append(common.ProgressBar(path.name, unit=" frames/s"))
        return bars[-1]

    try:
        report = archive.colorize_films(colorizer, directory, output, settings, shard=shard,
                                        workers=args.workers, overwrite=args.overwrite,
                                        progress=progress, hints=given)
    except KeyboardInterrupt:
        print("interrupted: finished films are kept; run the same command to continue",
              file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    finally:
        for bar in bars:
            bar.close()
    for path, reason in report.failed:
        print(f"failed: {path}: {reason}")
    skipped = f", skipped {len(report.skipped)} finished before" if report.skipped else ""
    print(f"done {len(report.done)} films, failed {len(report.failed)}{skipped}; outputs in "
          f"{output}")
    return errors.EXIT_FAILED if report.failed else errors.EXIT_OK
