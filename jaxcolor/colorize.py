"""Colourise photos with a trained checkpoint: files, folders, globs, records or .npy arrays.

    python -m jaxcolor.colorize --workdir=/runs/gan101 --input=/scans --output=/scans-colour
    python -m jaxcolor.colorize --checkpoint=/runs/gan101/checkpoints --best \\
        --input='/scans/**/*.tif' --output=out --format=same
    python -m jaxcolor.colorize --workdir=/runs/gan101 --backend=jax ...  # force JAX (default: auto)

Inputs: JPEG, PNG, WebP, BMP, TIFF, GIF (gray, RGB, RGBA, palette, 16-bit; EXIF rotation and
ICC profiles applied); a records directory (`jaxcolor.data.records`: each record's L); `.npy`
lightness arrays [H, W] or [N, H, W], uint8 in the 8-bit L encoding (L * 255 / 100) or float
L in [0, 100]. A directory is searched recursively; records directories inside it are read
as records. Colour inputs are converted to L first (re-colourising a colour photo is allowed).

Outputs mirror the inputs' paths relative to --input (a stack [N, H, W] or a records
directory becomes a folder of 000000.png, 000001.png, ...), at the input's exact size, with
the input's own lightness; alpha is kept (except in JPEG, which has none: composited on
white). Files are written atomically (temporary name, then rename), so an interrupted run
never leaves half-written images, and the same command resumes: existing outputs are skipped
unless --overwrite. An output that would replace an input is refused before anything runs.

Files that cannot be read are reported with the reason and the rest still run. Exit status:
0 all done (or skipped), 1 some inputs failed, 2 nothing ran (bad flags, checkpoint or
input), 130 interrupted.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import glob
import itertools
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps

from jaxcolor import infer
from jaxcolor import photo as photo_lib
from jaxcolor.data import images
from jaxcolor.data import records as records_lib

IMAGE_SUFFIXES = images.IMAGE_EXTENSIONS
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                 ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95},
                 "PNG": {"compress_level": 1}}  # 2x faster than 4, ~10% larger
DEFAULT_MAX_PIXELS = 2**28  # ~16k x 16k: archive scans are large; still refuses bombs
CHUNK_PIXELS = 2**27  # decoded pixels held at once (plus lookahead), whatever --batch_size
_READ_ERRORS = (images.ImageDecodeError, photo_lib.InputImageError, records_lib.RecordsError,
                OSError, ValueError)
_COLORIZE_ERRORS = (ValueError, MemoryError, RuntimeError)  # RuntimeError: XLA out of memory


class UsageError(ValueError):
    """The command cannot run as given; the message says what to change."""


# --------------------------------------------------------------------------------------
# Work items.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Item:
    """One image to colourise: where it comes from and where it goes."""

    label: str  # the input as reported: a path, or path[index] inside a stack
    rel: Path  # output path relative to --output, without suffix
    suffix: str  # output suffix for --format=same
    load: Callable[[], photo_lib.Photo]


@dataclasses.dataclass(frozen=True)
class Failure:
    label: str
    reason: str


def load_photo_file(path: Path, max_pixels: int) -> photo_lib.Photo:
    """Decode a photo; an alpha channel (RGBA, LA, transparent palette) is kept beside it."""
    rgb = images.load_image_rgb(path, max_pixels=max_pixels)  # validates; uniform errors
    with Image.open(path) as image:
        if not photo_lib.has_alpha(image):
            return photo_lib.Photo(rgb)
        # Keep the un-composited colours with their alpha, so viewers composite exactly once.
        rgba = np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))
    return photo_lib.Photo(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]))


def _lightness_photo(array: np.ndarray, label: str) -> photo_lib.Photo:
    if array.dtype == np.uint8:
        return photo_lib.Photo.from_lightness8(array)
    if np.issubdtype(array.dtype, np.floating):
        return photo_lib.Photo(np.asarray(array, np.float32))
    raise photo_lib.InputImageError(f"{label}: dtype {array.dtype}; expected uint8 8-bit L "
                                    "or float L in [0, 100]")


def _npy_items(path: Path, rel: Path) -> list[Item]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # numpy raises several types for damaged files
        raise photo_lib.InputImageError(
            f"unreadable .npy file ({type(e).__name__}: {e})") from None
    if array.ndim == 2:
        return [Item(str(path), rel.with_suffix(""), ".png",
                     functools.partial(_lightness_photo, array, str(path)))]
    if array.ndim == 3:
        return [Item(f"{path}[{i}]", rel.with_suffix("") / f"{i:06d}", ".png",
                     functools.partial(_lightness_photo, array[i], f"{path}[{i}]"))
                for i in range(array.shape[0])]
    raise photo_lib.InputImageError(f"array of shape {array.shape}; expected lightness [H, W] "
                                    "or [N, H, W]")


def _records_items(directory: Path, rel: Path) -> list[Item]:
    recs = records_lib.Records(directory)
    return [Item(f"{directory}[{i}]", rel / f"{i:06d}", ".png",
                 functools.partial(lambda i: photo_lib.Photo.from_lightness8(recs[i][0]), i))
            for i in range(len(recs))]


def _is_records(path: Path) -> bool:
    return (path / records_lib.MANIFEST).is_file()


def _items_for(path: Path, rel: Path, max_pixels: int) -> list[Item]:
    if path.is_dir():
        return _records_items(path, rel)
    if path.suffix.lower() == ".npy":
        return _npy_items(path, rel)
    return [Item(str(path), rel.with_suffix(""), path.suffix,
                 functools.partial(load_photo_file, path, max_pixels))]


def _glob_base(pattern: str) -> Path:
    """The directory part of a glob before its first wildcard: outputs mirror paths below it."""
    base = list(itertools.takewhile(lambda p: not glob.has_magic(p), Path(pattern).parts))
    return Path(*base).expanduser() if base else Path(".")


def discover(spec: str, output: Path,
             max_pixels: int) -> tuple[list[Item], list[Failure], set[Path]]:
    """Expand --input into work items, unreadable inputs, and every input file's real path."""
    path = Path(spec).expanduser()
    output = output.resolve()
    if path.is_dir():
        if path.resolve() == output:
            raise UsageError(f"--output {output} is the input directory; outputs would mix "
                             "with the photos (choose another directory)")
        base = path
        if _is_records(path):
            sources = [path]
        else:
            sources = []
            for dirpath, dirnames, filenames in os.walk(path):
                here = Path(dirpath)
                if _is_records(here):
                    sources.append(here)
                    dirnames.clear()
                    continue
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                     and not _inside(here / d, output))
                sources += [here / f for f in sorted(filenames) if not f.startswith(".")
                            and Path(f).suffix.lower() in IMAGE_SUFFIXES + (".npy",)]
    elif path.is_file():
        base, sources = path.parent, [path]
    else:
        base = _glob_base(spec)
        sources = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)
                         if os.path.isfile(p) or _is_records(Path(p)))
        sources = [p for p in sources if not _inside(p, output)]
    if not sources:
        raise UsageError(f"--input {spec}: no images, .npy arrays or records found (a file, a "
                         "directory or a glob pattern)")
    items, failures, inputs = [], [], set()
    for source in sorted(sources, key=str):
        real = Path(os.path.realpath(source))  # never raises, even on a symlink loop
        inputs.update(real.rglob("*") if source.is_dir() else [real])
        try:
            items += _items_for(source, source.relative_to(base) if source != base else Path(),
                                max_pixels)
        except _READ_ERRORS as e:
            failures.append(Failure(str(source), getattr(e, "reason", str(e))))
    return items, failures, inputs


def _inside(path: Path, directory: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(directory)


def output_path(item: Item, output: Path, fmt: str) -> Path:
    suffix = {"png": ".png", "jpg": ".jpg"}.get(fmt, item.suffix)
    if suffix.lower() not in _SAVE_FORMATS:  # e.g. .gif: a palette would ruin the colours
        suffix = ".png"
    return output / item.rel.parent / (item.rel.name + suffix)


def plan(items: list[Item], inputs: set[Path], output: Path, fmt: str) -> list[tuple[Item, Path]]:
    """Output paths; refuses to overwrite an input or to write two inputs to one file."""
    planned, seen = [], {}
    for item in items:
        out = output_path(item, output, fmt)
        real = out.resolve()
        if real in inputs:
            raise UsageError(f"refusing to write {out}: it is an input file (choose another "
                             "--output or --format)")
        if real in seen:
            raise UsageError(f"{seen[real]} and {item.label} would both be written to {out} "
                             "(use --format=same, or separate them)")
        seen[real] = item.label
        planned.append((item, out))
    return planned


# --------------------------------------------------------------------------------------
# Writing.
# --------------------------------------------------------------------------------------


def save_image(pixels: np.ndarray, path: Path) -> None:
    """Write atomically: a hidden temporary file in the same directory, then a rename."""
    fmt = _SAVE_FORMATS[path.suffix.lower()]
    image = Image.fromarray(pixels)
    if fmt == "JPEG" and image.mode == "RGBA":  # no alpha in JPEG: composite as viewers do
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255,) * 4), image)
        image = image.convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        image.save(tmp, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failures: list[Failure] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def format(self, output: Path) -> str:
        rate = self.done / max(self.seconds, 1e-9)
        lines = [f"failed: {f.label}: {f.reason}" for f in self.failures]
        skipped = (f", skipped {self.skipped} existing (--overwrite to redo)"
                   if self.skipped else "")
        lines.append(f"done {self.done}, failed {len(self.failures)}{skipped} in "
                     f"{self.seconds:.1f} s ({rate:.2f} images/s); outputs in {output}")
        return "\n".join(lines)


def _reason(e: BaseException) -> str:
    return getattr(e, "reason", None) or str(e) or type(e).__name__


def _lookahead(pool, fn, items: Iterable, ahead: int) -> Iterator:
    """(item, future of fn(item)) in order, with at most `ahead` running ahead."""
    queue = deque()
    for item in items:
        queue.append((item, pool.submit(fn, item)))
        if len(queue) > ahead:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def run(colorizer: infer.Colorizer, planned: list[tuple[Item, Path]], *, overwrite: bool,
        workers: int, progress: Callable[[int, int], None], summary: Summary) -> Summary:
    """Colourise `planned` (item, output path) pairs; fills and returns `summary`.

    Worker threads decode the next photos and write finished ones while the main thread runs
    the network; at most one chunk of outputs waits to be written, so memory stays bounded.
    """
    todo = [(item, out) for item, out in planned if overwrite or not out.exists()]
    summary.skipped += len(planned) - len(todo)
    started = time.perf_counter()

    def fail(item: Item, reason: str) -> None:
        summary.failures.append(Failure(item.label, reason))
        progress(summary.done + len(summary.failures), len(todo))

    def colour(chunk) -> list:
        """Outputs (or the exception) per photo; a failing batch is retried one by one."""
        try:
            return colorizer.colorize_photos([photo for _, _, photo in chunk])
        except _COLORIZE_ERRORS as e:
            return [e] if len(chunk) == 1 else [o for c in chunk for o in colour([c])]

    def settle(pending) -> None:
        for item, out, future in pending:
            error = future.exception()
            if error is not None:
                fail(item, f"cannot write {out}: {_reason(error)}")
            else:
                summary.done += 1
                progress(summary.done + len(summary.failures), len(todo))

    def flush(pool, chunk, pending) -> list:
        outs = colour(chunk)
        settle(pending)
        submitted = []
        for (item, out, _), pixels in zip(chunk, outs):
            if isinstance(pixels, BaseException):
                fail(item, _reason(pixels))
            else:
                submitted.append((item, out, pool.submit(save_image, pixels, out)))
        return submitted

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        chunk, pixels, pending = [], 0, []
        loads = _lookahead(pool, lambda pair: pair[0].load(), todo, ahead=colorizer.batch_size)
        for (item, out), future in loads:
            try:
                photo = future.result()
            except _READ_ERRORS as e:
                fail(item, _reason(e))
                continue
            chunk.append((item, out, photo))
            pixels += photo.pixels.size
            if len(chunk) == colorizer.batch_size or pixels >= CHUNK_PIXELS:
                pending = flush(pool, chunk, pending)
                chunk, pixels = [], 0
        settle(flush(pool, chunk, pending) if chunk else pending)
    summary.seconds = time.perf_counter() - started
    return summary


# --------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------


def add_checkpoint_flags(parser: argparse.ArgumentParser) -> None:
    """--workdir | --checkpoint, --step | --best: shared with `jaxcolor.evaluate`."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--workdir", help="training run directory (holds checkpoints/)")
    where.add_argument("--checkpoint", help="a checkpoints directory")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    which.add_argument("--best", action="store_true", help="the best step by validation L1")
    parser.add_argument("--render_size", type=int, default=None,
                        help="side the network sees (multiple of 32; default: training crop)")
    parser.add_argument("--batch_size", type=int, default=8, help="photos per forward pass")
    parser.add_argument("--upsample", choices=photo_lib.UPSAMPLING, default="bilateral",
                        help="how predicted colour reaches full resolution")
    parser.add_argument("--backend", choices=infer.BACKENDS, default="auto",
                        help="run G with JAX, or as ONNX in ONNX Runtime (faster on CPU; "
                             "pip install 'jaxcolor[onnx]'); auto: onnx on a CPU where it "
                             "is installed, else jax")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jaxcolor.colorize",
                                     description=__doc__.split("\n\n")[0])
    add_checkpoint_flags(parser)
    parser.add_argument("--input", required=True, help="file, directory (recursive) or glob")
    parser.add_argument("--output", required=True, help="directory for the coloured images")
    parser.add_argument("--format", choices=("png", "jpg", "same"), default="png",
                        help="output format (same: the input's; png for arrays and records)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse larger images (decompression-bomb guard)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="threads decoding and writing files")
    return parser


def load_colorizer(args) -> infer.Colorizer:
    """The Colorizer named by the shared checkpoint flags, with library logs quietened."""
    from absl import logging  # Orbax logs every read-only manager at WARNING

    logging.set_verbosity(logging.ERROR)
    if args.batch_size < 1:
        raise UsageError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.render_size is not None and args.render_size < 1:
        raise UsageError(f"--render_size must be positive, got {args.render_size}")
    return infer.Colorizer.from_checkpoint(
        args.workdir or args.checkpoint, step=args.step, best=args.best,
        render_size=args.render_size, batch_size=args.batch_size, upsample=args.upsample,
        backend=args.backend)


def user_errors() -> tuple[type[BaseException], ...]:
    from jaxcolor.onnx_backend import OnnxUnavailableError
    from jaxcolor.train.checkpoint import CheckpointError

    return (UsageError, CheckpointError, FileNotFoundError, records_lib.RecordsError,
            OnnxUnavailableError)


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from jaxcolor.data.ingest import ProgressBar

    output = Path(args.output).expanduser()
    summary = Summary()
    bar = ProgressBar("colorize")
    try:
        Image.MAX_IMAGE_PIXELS = args.max_pixels  # Pillow's own bomb guard, per process
        items, summary.failures, inputs = discover(args.input, output, args.max_pixels)
        planned = plan(items, inputs, output, args.format)
        colorizer = load_colorizer(args)
        print(f"checkpoint step {colorizer.step}, render size {colorizer.render_size}, "
              f"backend {colorizer.backend}, {len(planned)} images", file=sys.stderr,
              flush=True)
        run(colorizer, planned, overwrite=args.overwrite, workers=max(1, args.workers),
            progress=bar, summary=summary)
    except user_errors() as e:
        bar.close()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted\n{summary.format(output)}", file=sys.stderr)
        return 130
    bar.close()
    print(summary.format(output))
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
