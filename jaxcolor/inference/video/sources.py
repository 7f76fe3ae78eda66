"""What a film run colours: a video file (through `jaxcolor.inference.video.io`) or a folder
of numbered frames (any photo format, natural order of their names, a given frame rate), as
one `Source`: a description of the frames as a video stream, and the frames in order from
any point on (a resumed run enters the film where its last finished segment ended).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

from jaxcolor.data import images
from jaxcolor.errors import UsageError
from jaxcolor.inference import files
from jaxcolor.inference.photo import Photo
from jaxcolor.inference.video import io as video_io


@dataclasses.dataclass
class Source:
    """Frames to colourise: `info` describes them as a video stream; `frames(start, after)`
    yields (index, pts, name, load) from frame `start` on, with `load()` -> Photo (called in
    a worker). `after` is the time stamp of frame `start - 1` when known: a video file is
    then entered at the key frame before it (`io.Decoder.frames`), not decoded from frame 0.
    """

    info: video_io.VideoInfo
    frames: Callable[[int, int | None], Iterator[tuple]]
    identity: dict


def video_source(path: Path) -> Source:
    info = video_io.probe(path)
    decoder = video_io.Decoder(info)

    def frames(start: int, after: int | None):
        for frame in decoder.frames(start, after):
            yield (frame.index, frame.pts, f"{frame.index:06d}",
                   functools.partial(_load_frame, frame, info.gray))

    stat = path.stat()
    return Source(info, frames,
                  {"path": str(path.resolve()), "bytes": stat.st_size,
                   "mtime_ns": stat.st_mtime_ns, "frames": info.frames})


def _load_frame(frame: video_io.Frame, gray: bool) -> Photo:
    return Photo(video_io.pixels(frame, gray))


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def folder_source(directory: Path, fps: Fraction, max_pixels: int) -> Source:
    paths = sorted((p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in images.IMAGE_EXTENSIONS), key=_natural_key)
    if not paths:
        raise video_io.VideoInputError(f"{directory}: no frames (image files) in this folder")
    stems = [p.stem for p in paths]
    if len(set(stems)) < len(stems):
        twice = next(s for s in stems if stems.count(s) > 1)
        raise video_io.VideoInputError(f"{directory}: two frames are named {twice}.*")
    first = files.load_photo_file(paths[0], max_pixels)
    height, width = first.size
    info = video_io.VideoInfo(
        path=directory, width=width, height=height, time_base=1 / fps, rate=fps,
        frames=len(paths), pix_fmt="rgb24", bit_depth=8, gray=False, variable=False,
        colour={"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1},
        audio=())

    def load(path: Path) -> Photo:
        photo = files.load_photo_file(path, max_pixels)
        if photo.size != (height, width):
            raise video_io.VideoReadError(f"{path}: {photo.size[1]}x{photo.size[0]} pixels, "
                                          f"the frames before it {width}x{height}")
        return photo

    def frames(start: int, after: int | None):  # a folder is entered at any frame
        for i in range(start, len(paths)):
            yield i, i, paths[i].stem, functools.partial(load, paths[i])

    return Source(info, frames,
                  {"path": str(directory.resolve()), "frames": len(paths),
                   "names": [p.name for p in paths[:1] + paths[-1:]], "fps": str(fps)})


def open_source(path: Path, fps: Fraction, max_pixels: int) -> Source:
    if not path.exists():
        raise UsageError(f"--input {path}: no such file or directory")
    return folder_source(path, fps, max_pixels) if path.is_dir() else video_source(path)
