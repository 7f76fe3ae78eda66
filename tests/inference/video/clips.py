"""Synthetic film clips for the video tests, made in the test: a colour photo panned and
zoomed, a hard cut to another photo, an object moving over a still photo, with a sine tone
as audio; and readers for what `jaxcolor video` writes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from tests.support import photo_rgb  # noqa: E402


def pan_frames(count: int, width: int = 64, height: int = 48, step: float = 1.5,
               seed: int = 0, zoom: float = 0.0) -> list[np.ndarray]:
    """uint8 RGB frames of one photo seen through a window moving `step` pixels a frame
    (and zooming in by `zoom` per frame)."""
    big = photo_rgb(height * 2, width * 2 + int(step * count) + 8, seed=seed)
    out = []
    for i in range(count):
        scale = 1.0 + zoom * i
        w, h = int(round(width * scale)), int(round(height * scale))
        left = int(round(step * i))
        crop = Image.fromarray(big[height // 2:height // 2 + h, left:left + w])
        out.append(np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR)))
    return out


def moving_object_frames(count: int, width: int = 64, height: int = 48, step: int = 3,
                         radius: int = 9) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A saturated red disc moving `step` pixels a frame to the right over a still photo:
    uint8 RGB frames and the disc's mask in each."""
    background = photo_rgb(height, width, seed=3)
    yy, xx = np.mgrid[:height, :width]
    frames, masks = [], []
    for i in range(count):
        disc = (xx - (radius + 2 + step * i)) ** 2 + (yy - height // 2) ** 2 <= radius**2
        frames.append(np.where(disc[..., None], np.uint8([220, 30, 30]), background))
        masks.append(disc)
    return frames, masks


def grainy_sky_frames(count: int, width: int = 64, height: int = 48, step: int = 5,
                      size: int = 20, grain: float = 2.0
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A textured patch crossing a flat sky `step` pixels a frame, with film grain (new
    every frame, `grain` gray levels) all over: uint8 RGB frames and the patch's mask."""
    patch = photo_rgb(size, size, seed=3)
    rng = np.random.default_rng(0)
    frames, masks = [], []
    for i in range(count):
        sky = np.float32([120, 170, 225]) + rng.normal(0, grain, (height, width, 1))
        frame = np.clip(sky, 0, 255).astype(np.uint8)
        mask = np.zeros((height, width), bool)
        mask[height - size - 4:height - 4, 2 + step * i:2 + step * i + size] = True
        frame[mask] = patch[:, :mask.sum() // size].reshape(-1, 3)
        frames.append(frame)
        masks.append(mask)
    return frames, masks


def cut_frames(count: int, cut: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """A pan of one photo, then from frame `cut` on a pan of another."""
    first = pan_frames(cut, width, height, seed=1)
    second = pan_frames(count - cut, width, height, seed=7)
    return first + [255 - f[::-1] for f in second]  # another photo, another tonal range


def write_clip(path: Path, frames: list[np.ndarray], *, fps: Fraction = Fraction(25),
               audio: bool = True, codec: str = "libx264", pix_fmt: str = "yuv420p",
               pts: list[int] | None = None, time_base: Fraction | None = None,
               gop: int | None = None) -> Path:
    """Encode `frames` (uint8 RGB or gray) into `path`, with a 440 Hz AAC tone as long as
    the clip when `audio`. `pts` (in `time_base`) for variable frame rates. `gop`: H.264
    with a key frame every `gop` frames exactly and B-frames between (frames decoded out of
    their order), so there is somewhere to seek to."""
    time_base = time_base or 1 / fps
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if codec == "libx264":
            options = {"crf": "10", "preset": "ultrafast"}
            if gop:
                options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=2"
            stream.codec_context.options = options
        tone = out.add_stream("aac", rate=48000) if audio else None
        for i, pixels in enumerate(frames):
            fmt = "gray" if pixels.ndim == 2 else "rgb24"
            frame = av.VideoFrame.from_ndarray(pixels, format=fmt)
            frame.pts = pts[i] if pts is not None else i
            frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if tone is not None:
            seconds = float((pts[-1] if pts else len(frames)) * time_base)
            t = np.arange(int(48000 * seconds)) / 48000
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = samples[start:start + 1024][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = 48000, start
                for packet in tone.encode(frame):
                    out.mux(packet)
            for packet in tone.encode(None):
                out.mux(packet)
    return path


def read_video(path: Path) -> dict:
    """Frames (uint8 RGB), their time stamps in seconds, size, rate and the audio packets'
    bytes of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(frame.pts * stream.time_base)
        rate = stream.average_rate
    with av.open(str(path)) as container:
        audio = [bytes(p) for s in container.streams.audio for p in container.demux(s) if p.size]
        audio_codecs = [s.codec_context.name for s in container.streams.audio]
    return {"frames": frames, "times": times, "rate": rate, "audio": audio,
            "audio_codecs": audio_codecs}
