"""Files in, files out: what `jaxcolor colorize` reads and where it writes.

Inputs: JPEG, PNG, WebP, BMP, TIFF, GIF (gray, RGB, RGBA, palette, 16-bit; EXIF rotation and
ICC profiles applied); a records directory (`jaxcolor.data.records`: each record's L); `.npy`
lightness arrays [H, W] or [N, H, W], uint8 in the 8-bit L encoding (L * 255 / 100) or float
L in [0, 100]. A directory is searched recursively; records directories inside it are read
as records. Colour inputs are converted to L first (re-colourising a colour photo is allowed).

Outputs mirror the inputs' paths relative to the input (a stack [N, H, W] or a records
directory becomes a folder of 000000.png, 000001.png, ...), at the input's exact size;
alpha is kept (except in JPEG, which has none: composited on white). Files are written
atomically (temporary name, then rename), so an interrupted run never leaves half-written
images, and the same command resumes: existing outputs are skipped unless asked to
overwrite. An output that would replace an input is refused before anything runs (`plan`).
`colorize_files` runs a plan through `jaxcolor.inference.pipeline`.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import itertools
import os
import stat
import time
import warnings
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import Image, ImageOps

from jaxcolor.data import images
from jaxcolor.data import records as records_lib
from jaxcolor.errors import RunError, UsageError
from jaxcolor.inference import photo as photo_lib
from jaxcolor.inference import pipeline
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.shards import Shard

IMAGE_SUFFIXES = images.IMAGE_EXTENSIONS
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                 ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95},
                 "PNG": {"compress_level": 1}}  # 2x faster than 4, ~10% larger
DEFAULT_MAX_PIXELS = 2**28  # ~16k x 16k: archive scans are large; still refuses bombs
READ_ERRORS = (images.ImageDecodeError, photo_lib.InputImageError, records_lib.RecordsError,
               OSError, ValueError)
"""What reading one input may raise: that input is reported as failed, the rest still run."""


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
    area: Callable[[], int | None] | None = None  # pixels, read without decoding

    @property
    def key(self) -> str:
        """What names this input in a `--shard` partition: its output path below --output."""
        return self.rel.as_posix()


@dataclasses.dataclass(frozen=True)
class Failure:
    label: str
    reason: str


def load_photo_file(path: Path, max_pixels: int) -> photo_lib.Photo:
    """Decode a photo; an alpha channel (RGBA, LA, transparent palette) is kept beside it."""
    rgb = images.load_image_rgb(path, max_pixels=max_pixels)  # validates; uniform errors
    with Image.open(path) as image:
        if not images.has_alpha(image):
            return photo_lib.Photo(rgb)
        # Keep the un-composited colours with their alpha, so viewers composite exactly once.
        rgba = np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))
    return photo_lib.Photo(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]))


_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def photo_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a photo file as it is shown (EXIF rotation applied), from its
    header, nothing decoded; None when the header cannot be read (the load then says why).
    Only regular files are opened: opening a named pipe would wait for ever."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a bomb's size is the load's to refuse
            with Image.open(path) as image:
                width, height = image.size
                turned = image.getexif().get(0x0112) in _TRANSPOSED
        return (height, width) if turned else (width, height)
    except Exception:  # noqa: BLE001 - any failure here is reported by the load
        return None


def photo_area(path: Path) -> int | None:
    """Width x height of a photo file from its header (the pipeline's pixel budget admits the
    photo with it), or None."""
    size = photo_size(path)
    return None if size is None else size[0] * size[1]


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
                 functools.partial(load_photo_file, path, max_pixels),
                 functools.partial(photo_area, path))]


def _glob_base(pattern: str) -> Path:
    """The directory part of a glob before its first wildcard: outputs mirror paths below it."""
    base = list(itertools.takewhile(lambda p: not glob.has_magic(p), Path(pattern).parts))
    return Path(*base).expanduser() if base else Path(".")


def discover(spec: str, output: Path, max_pixels: int,
             shard: Shard = Shard()) -> tuple[list[Item], list[Failure], set[Path]]:
    """Expand --input into work items, unreadable inputs, and every input file's real path;
    of the items and failures, `shard`'s share (by the output path relative to --output,
    which names each input uniquely)."""
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
        rel = source.relative_to(base) if source != base else Path()
        try:
            items += [i for i in _items_for(source, rel, max_pixels) if shard.owns(i.key)]
        except READ_ERRORS as e:
            if shard.owns(rel.with_suffix("").as_posix()):
                failures.append(Failure(str(source), getattr(e, "reason", str(e))))
    return items, failures, inputs


def with_hints(items: list[Item], hints: dict[str, list], source: str,
               shard: Shard = Shard()) -> list[Item]:
    """`items` (`shard`'s) with the hints a hints file gives (`inference.hints.load_file`),
    each photo's hints checked against its size (read from the file's header) before any
    work: a name that is no photo of the input, or a hint outside its photo, is a
    `hints.HintError`."""
    from jaxcolor.inference import hints as hints_lib

    by_name = {(item.rel.parent / (item.rel.name + item.suffix)).as_posix(): item
               for item in items}
    unknown = sorted(name for name in set(hints) - set(by_name)
                     if shard.owns(Path(name).with_suffix("").as_posix()))
    if unknown:
        raise hints_lib.HintError(f"{source}: {unknown[0]!r} is not a photo of the input "
                                  f"({len(unknown)} such entr{'y' if len(unknown) == 1 else 'ies'}"
                                  "; keys are paths relative to --input, or the file's name)")
    out = []
    for name, item in by_name.items():
        if hints.get(name):
            size = photo_size(Path(item.label))
            if size is None:
                raise hints_lib.HintError(f"{source}: {name}: not a readable photo")
            hints_lib.check_inside(hints[name], *size, f"{source}: {name}")
            item = dataclasses.replace(item, load=functools.partial(
                _hinted, item.load, tuple(hints[name])))
        out.append(item)
    return out


def _hinted(load: Callable[[], photo_lib.Photo], hints: tuple) -> photo_lib.Photo:
    return dataclasses.replace(load(), hints=hints)


def _inside(path: Path, directory: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(directory)


def output_path(item: Item, output: Path, fmt: str) -> Path:
    suffix = {"png": ".png", "jpg": ".jpg"}.get(fmt, item.suffix)
    if suffix.lower() not in _SAVE_FORMATS:  # e.g. .gif: a palette would ruin the colours
        suffix = ".png"
    return output / item.rel.parent / (item.rel.name + suffix)


def names_one_image(spec: str, output: Path) -> bool:
    """Whether `--output` is the coloured image's own file name: one input file and an
    output with an image suffix that is not an existing directory
    (`--input=old.jpg --output=old-colour.png` writes that file, not a folder of that name)."""
    return (Path(spec).expanduser().is_file() and output.suffix.lower() in _SAVE_FORMATS
            and not output.is_dir())


def plan(items: list[Item], inputs: set[Path], output: Path, fmt: str,
         to_file: bool = False) -> list[tuple[Item, Path]]:
    """Output paths (`to_file`: `output` itself, for one photo: `names_one_image`); refuses
    to overwrite an input or to write two inputs to one file."""
    if to_file and len(items) > 1:
        raise UsageError(f"--output {output}: one image file, but the input holds "
                         f"{len(items)} photos (name a directory instead)")
    planned, seen = [], {}
    for item in items:
        out = output if to_file else output_path(item, output, fmt)
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


class WriteError(RunError):
    """An output could not be written (disk full, no permission); names the file."""


def encode_image(pixels: np.ndarray, suffix: str, stream: BinaryIO) -> None:
    """Encode uint8 RGB / RGBA pixels into `stream` in the format of `suffix` (".png",
    ".jpg", ...), with the options every output of jaxcolor is written with."""
    fmt = _SAVE_FORMATS[suffix.lower()]
    image = Image.fromarray(pixels)
    if fmt == "JPEG" and image.mode == "RGBA":  # no alpha in JPEG: composite as viewers do
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255,) * 4), image)
        image = image.convert("RGB")
    image.save(stream, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))


def save_image(pixels: np.ndarray, path: Path) -> None:
    """Write atomically: a hidden temporary file in the same directory, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as stream:
            encode_image(pixels, path.suffix, stream)
        os.replace(tmp, path)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Summary:
    """What a run did: photos written, existing outputs skipped, failures in input order."""

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


def colorize_files(colorizer: Colorizer, planned: list[tuple[Item, Path]], *, overwrite: bool,
                   workers: int | None, progress: Callable[[int, int], None],
                   summary: Summary) -> Summary:
    """Colourise `planned` (item, output path) pairs through `pipeline.process`; fills and
    returns `summary` (also when interrupted: what was written stays written)."""
    todo = [(item, out) for item, out in planned if overwrite or not out.exists()]
    summary.skipped += len(planned) - len(todo)
    jobs = [pipeline.Job(item.label, item.load, functools.partial(_write, out), item.area)
            for item, out in todo]
    started = time.perf_counter()
    try:
        for outcome in pipeline.process(colorizer, jobs, workers=workers,
                                        read_errors=READ_ERRORS, finish_errors=(WriteError,)):
            if outcome.ok:
                summary.done += 1
            else:
                summary.failures.append(Failure(outcome.job.label, outcome.error))
            progress(summary.done + len(summary.failures), len(todo))
    finally:
        summary.seconds = time.perf_counter() - started
    return summary


def _write(path: Path, pixels: np.ndarray, _extra) -> Path:
    save_image(pixels, path)
    return path
