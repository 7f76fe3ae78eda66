"""Reading and writing film through PyAV (FFmpeg inside its wheels: no system ffmpeg).

  * `probe`: what a file holds, read once from its packets without decoding: the video
    stream's size, time base, frame rate and frame count (its packets: the count a container
    header declares is often wrong, e.g. AVI files with dropped frames), pixel format and
    colour tags, its audio streams. Anything that is not a readable video is refused here,
    in one line naming the file.
  * `Decoder`: the frames in presentation order with their time stamps. A packet the
    decoder rejects (a damaged frame) is counted in `Decoder.errors` and skipped; the run
    goes on. Time stamps are the decoder's, put back in increasing order over a short
    window (old AVI files with packed B-frames label frames with decoding times): output
    time stamps are the input's, so variable frame rates and gaps survive. A resumed run
    enters the film by seeking to the last key frame before its resume point, not by
    decoding every frame before it (`Decoder.frames`).
  * `Encoder`: one segment of coloured frames, encoded on its own (it starts with a key
    frame) into a Matroska file; it also returns each packet's exact time stamps, since
    containers round them (Matroska to the millisecond) and the final file must carry the
    input's.
  (`jaxcolor.inference.video.mux` assembles the segments and the input's audio into the
  output container.)

Colour: frames are converted to RGB with the input's own matrix and range (BT.601 when
untagged, as FFmpeg does) and back with the same, tagged in the output, so a frame's
lightness survives the round trip up to the codec's loss (none with `--lossless`).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import heapq
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from jaxcolor.errors import RunError, UsageError, require

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
"""Output suffixes and their FFmpeg muxers."""

REORDER_WINDOW = 16
"""Frames over which time stamps are put back in order (more than any B-frame pyramid)."""


class VideoInputError(UsageError):
    """The input is not a video that can be colourised (nothing ran)."""


class VideoReadError(RunError):
    """The input failed while it was being read (finished segments are kept)."""


class VideoWriteError(RunError):
    """An output could not be written (finished segments are kept)."""


@dataclasses.dataclass(frozen=True)
class Codec:
    """How the output is encoded: `name` h264 | h265 | ffv1, `crf` (h264, h265), x264/x265
    `preset`, `lossless` (h264: exact RGB through libx264rgb; ffv1 always is)."""

    name: str = "h264"
    crf: int = 18
    preset: str = "medium"
    lossless: bool = False

    def __post_init__(self):
        if self.name not in ("h264", "h265", "ffv1"):
            raise UsageError(f"--codec {self.name}: choose h264, h265 or ffv1")
        if self.lossless and self.name == "h265":
            raise UsageError("--lossless: x265 cannot store RGB exactly; use --codec h264 or "
                             "ffv1")
        if not 0 <= self.crf <= 51:
            raise UsageError(f"--crf must lie in 0..51, got {self.crf}")

    def encoder(self, width: int, height: int) -> tuple[str, str, dict[str, str]]:
        """(FFmpeg encoder, pixel format, options). 4:2:0 needs even sides: odd sizes are
        encoded 4:4:4 so the output keeps the input's exact size."""
        even = width % 2 == 0 and height % 2 == 0
        if self.name == "ffv1":
            return "ffv1", "bgr0", {"level": "3", "slicecrc": "1"}
        # One encoder thread: x264's threads made different bits for the same frames now
        # and then on a loaded machine, and a resumed film must equal an uninterrupted one.
        if self.lossless:
            return "libx264rgb", "rgb24", {"qp": "0", "preset": self.preset, "threads": "1"}
        pix_fmt = "yuv420p" if even else "yuv444p"
        options = {"crf": str(self.crf), "preset": self.preset}
        if self.name == "h265":
            return "libx265", pix_fmt, {**options, "x265-params":
                                        "log-level=error:pools=1:frame-threads=1"}
        return "libx264", pix_fmt, {**options, "threads": "1"}


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe` found (time stamps in units of `time_base`)."""

    path: Path
    width: int
    height: int
    time_base: Fraction
    rate: Fraction  # frames per second (average; see `variable`)
    frames: int  # video packets holding data: the frames the film has
    pix_fmt: str
    bit_depth: int
    gray: bool
    variable: bool  # variable frame rate (or gaps)
    colour: dict  # colorspace, color_range, color_primaries, color_trc of the stream
    audio: tuple[str, ...]  # codec of each audio stream, in order
    keyframes: tuple[int, ...] = ()
    """Time stamps of the key frames, in order: where decoding may start. Empty when a
    frame has no time stamp or two frames share one (the film is then always decoded from
    its first frame)."""

    @property
    def duration_tick(self) -> int:
        """One nominal frame, in time-base units (at least 1)."""
        return max(1, round(1 / (self.rate * self.time_base)))


def _open(path: Path):
    av = require("av", "video")
    try:
        return av.open(str(path))
    except av.FFmpegError as e:
        raise VideoInputError(f"{path}: not a video FFmpeg can read ({_reason(e)})") from None
    except OSError as e:
        raise VideoInputError(f"{path}: cannot be read ({e.strerror or e})") from None


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def probe(path: Path) -> VideoInfo:
    """Read the container's packets once (no decoding) and describe its video stream."""
    av = require("av", "video")
    with _open(path) as container:
        if not container.streams.video:
            raise VideoInputError(f"{path}: no video stream (streams: "
                                  f"{', '.join(s.type for s in container.streams) or 'none'})")
        stream = container.streams.video[0]
        cc = stream.codec_context
        if not cc.width or not cc.height:
            raise VideoInputError(f"{path}: the video stream has no frame size")
        frames, ticks, keys = _packets(av, container, stream, path)
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        steps = np.diff(np.sort(np.asarray(ticks, np.int64)))
        fmt = stream.format
        depth = max((c.bits for c in fmt.components), default=8) if fmt else 8
        return VideoInfo(
            path=Path(path), width=cc.width, height=cc.height,
            time_base=stream.time_base or Fraction(1, 1) / rate, rate=Fraction(rate),
            frames=frames, pix_fmt=fmt.name if fmt else "unknown", bit_depth=depth,
            gray=bool(fmt) and fmt.name.startswith(("gray", "ya", "monob", "monow")),
            variable=len(steps) > 1 and int(steps.min()) != int(steps.max()),
            colour={k: int(getattr(cc, k)) for k in ("colorspace", "color_range",
                                                   "color_primaries", "color_trc")},
            audio=tuple(s.codec_context.name for s in container.streams.audio),
            keyframes=tuple(sorted(keys)) if len(set(ticks)) == frames else ())


def _packets(av, container, stream, path: Path) -> tuple[int, list[int], list[int]]:
    """(frames, their time stamps, the key frames' time stamps) from the video packets."""
    frames, ticks, keys = 0, [], []
    try:
        for packet in container.demux(stream):
            if packet.size:
                frames += 1
                if packet.pts is not None:
                    ticks.append(packet.pts)
                    if packet.is_keyframe:
                        keys.append(packet.pts)
    except av.FFmpegError as e:
        raise VideoInputError(f"{path}: damaged after {frames} frames ({_reason(e)})") \
            from None
    if not frames:
        raise VideoInputError(f"{path}: the video stream has no frames")
    return frames, ticks, keys


# --------------------------------------------------------------------------------------
# Decoding.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the film, time stamp, and the decoded picture."""

    index: int
    pts: int
    picture: object  # av.VideoFrame (converted in a worker: `pixels`)


def pixels(frame: Frame, gray: bool) -> np.ndarray:
    """uint8 gray [H, W] or RGB [H, W, 3] of a decoded frame, converted with the stream's
    own matrix and range (any bit depth becomes 8 bits)."""
    picture = frame.picture
    converted = picture.reformat(format="gray" if gray else "rgb24",
                                 src_color_range=picture.color_range or None)
    return converted.to_ndarray()


class Decoder:
    """The frames of a film in order (`frames`). `decoded` and `errors` count the pictures
    decoded and the packets rejected (damaged frames) by the latest pass."""

    def __init__(self, info: VideoInfo):
        self.info = info
        self.decoded = 0
        self.errors = 0

    def frames(self, start: int = 0, after: int | None = None) -> Iterator[Frame]:
        """Frames from index `start` on (every pass counts from the film's first frame).

        `after`, the time stamp of frame `start - 1` (where a finished segment ended), lets
        the pass begin at the last key frame at or before it instead of at frame 0: frames
        are decoded from there and dropped up to the one stamped `after`, which must be met
        again, with its own time stamp, before any later one. Otherwise (no key frame to
        seek to, a seek FFmpeg refuses, a damaged or repaired time stamp on the way) the
        pass starts over from frame 0 and drops `start` frames. Dropped frames' pictures
        are never converted.
        """
        if start and after is not None:
            entered = yield from self._pass(start, after)
            if entered:
                return
        yield from self._pass(start, None)

    def _pass(self, start: int, after: int | None):
        """One pass over the file; returns False, having yielded nothing, when a pass that
        seeks (`after`) cannot find its way to frame `start`."""
        av = require("av", "video")
        self.decoded = self.errors = 0
        with _open(self.info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if after is not None and not self._seek(av, container, stream, after):
                return False
            ordered = _in_order(self._pictures(av, container, stream), self.info.duration_tick)
            if after is not None and not _skip_through(ordered, after):
                return False
            index = 0 if after is None else start
            for picture, pts, _ in ordered:
                if index >= start:
                    yield Frame(index, pts, picture)
                index += 1
        return True

    def _seek(self, av, container, stream, after: int) -> bool:
        """Move to the last key frame at or before time stamp `after`."""
        keys = self.info.keyframes
        i = bisect.bisect_right(keys, after) - 1
        if i < 0:
            return False
        try:
            container.seek(keys[i], stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            return False
        return True

    def _pictures(self, av, container, stream):
        try:
            packets = container.demux(stream)
            for packet in packets:
                try:
                    for picture in packet.decode():  # the flush packet (size 0) drains it
                        self.decoded += 1
                        yield picture
                except av.FFmpegError:  # a damaged frame: counted, reported at the end
                    self.errors += 1
        except av.FFmpegError as e:
            raise VideoReadError(f"{self.info.path}: unreadable after frame {self.decoded} "
                                 f"({_reason(e)})") from None


def _in_order(pictures, tick: int) -> Iterator[tuple[object, int, bool]]:
    """(picture, time stamp, repaired) in presentation order: the oldest picture waiting
    takes the smallest time stamp among the `REORDER_WINDOW` pictures behind it; a missing
    or repeated time stamp becomes the previous one plus `tick` (`repaired`), so they
    always increase."""
    pending: collections.deque = collections.deque()  # pictures, in output order
    stamps: list[int] = []  # heap of the pending pictures' time stamps
    last = None

    def emit():
        nonlocal last
        pts = heapq.heappop(stamps) if stamps else None
        repaired = pts is None or (last is not None and pts <= last)
        if repaired:
            pts = last + tick if last is not None else 0
        last = pts
        return pending.popleft(), pts, repaired

    for picture in pictures:
        pending.append(picture)
        if picture.pts is not None:
            heapq.heappush(stamps, picture.pts)
        if len(pending) > REORDER_WINDOW:
            yield emit()
    while pending:
        yield emit()


def _skip_through(ordered, after: int) -> bool:
    """Drop frames up to and including the one stamped `after`; False when a frame later
    than it, or a repaired time stamp, comes first (the seek landed too late, or the time
    stamps cannot be trusted), or the film ends."""
    for _, pts, repaired in ordered:
        if repaired or pts > after:
            return False
        if pts == after:
            return True
    return False


# --------------------------------------------------------------------------------------
# Encoding segments, assembling the film.
# --------------------------------------------------------------------------------------


def _colour_tags(colour: dict) -> dict:
    """The input's colour tags worth copying (unspecified ones are left to FFmpeg)."""
    return {k: v for k, v in colour.items() if v not in (0, 2)}  # 0 reserved/RGB, 2 unspec.


class Encoder:
    """Encodes frames (uint8 RGB) into one segment file; `close` returns each packet's
    (pts, dts, duration) in the stream's time base, in file order."""

    def __init__(self, path: Path, info: VideoInfo, codec: Codec):
        av = require("av", "video")
        self._av, self.path, self.info = av, path, info
        name, self._pix_fmt, options = codec.encoder(info.width, info.height)
        try:
            self._out = av.open(str(path), "w", format="matroska")
            stream = self._out.add_stream(name, rate=info.rate)
        except (av.FFmpegError, OSError) as e:
            raise VideoWriteError(f"cannot write {path}: {_reason(e)}") from None
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, self._pix_fmt
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        stream.codec_context.options = options
        self._tags = {} if self._pix_fmt in ("rgb24", "bgr0") else _colour_tags(info.colour)
        for key, value in self._tags.items():
            setattr(stream.codec_context, key, value)
        self._stream, self.packets = stream, []

    def write(self, rgb: np.ndarray, pts: int) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., :3]),
                                                 format="rgb24")
        frame = frame.reformat(format=self._pix_fmt,
                               dst_colorspace=self._tags.get("colorspace"),
                               dst_color_range=self._tags.get("color_range"))
        frame.pts, frame.time_base = pts, self.info.time_base
        self._mux(self._stream.encode(frame))

    def _mux(self, packets) -> None:
        try:
            for packet in packets:
                self.packets.append((packet.pts, packet.dts, packet.duration))
                self._out.mux(packet)
        except (self._av.FFmpegError, OSError) as e:
            raise VideoWriteError(f"cannot write {self.path}: {_reason(e)}") from None

    def close(self) -> list[tuple[int, int, int]]:
        self._mux(self._stream.encode(None))
        try:
            self._out.close()
        except (self._av.FFmpegError, OSError) as e:
            raise VideoWriteError(f"cannot write {self.path}: {_reason(e)}") from None
        return self.packets

    def abort(self) -> None:
        try:
            self._out.close()
        except Exception:  # noqa: BLE001 - closing a broken file on the way out
            pass


def fsync_file(path: Path) -> None:
    """Flush a finished file to disk before it is renamed into place (power loss)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
