"""Assembling the film: the segments' packets, with the time stamps recorded when they were
encoded, and every audio packet of the input, unchanged, interleaved by time into the output
container (MP4, MOV, Matroska); and the checks around it (can the container hold the audio;
how many frames did the file get).
"""

from __future__ import annotations

import contextlib
import heapq
import io
from pathlib import Path

from jaxcolor.errors import UsageError, require
from jaxcolor.inference.video.io import (CONTAINERS, VideoInfo, VideoWriteError, _open,
                                          _reason)


def _mux_options(fmt: str, info: VideoInfo) -> dict[str, str]:
    """MP4/MOV edit lists are stored in the movie time scale (1/1000 s by default), which
    would shift time stamps that do not start at zero: use the video's own, as fine."""
    if fmt not in ("mp4", "mov"):
        return {}
    scale = info.time_base.denominator
    while scale < 10000:
        scale *= 2
    return {"movie_timescale": str(scale)}


def check_audio(info: VideoInfo, suffix: str) -> None:
    """Refuse before any work an output container that cannot hold the input's audio."""
    if not info.audio:
        return
    av = require("av", "video")
    with _open(info.path) as source:
        try:
            with av.open(io.BytesIO(), "w", format=CONTAINERS[suffix]) as trial:
                for stream in source.streams.audio:
                    trial.add_stream_from_template(stream)
                trial.start_encoding()
        except (av.FFmpegError, ValueError) as e:
            raise UsageError(f"{info.path}: its audio ({', '.join(info.audio)}) cannot be "
                             f"copied into a {suffix} file ({_reason(e)}); choose .mkv") \
                from None


def assemble(output: Path, suffix: str, segments: list[tuple[Path, list]],
             info: VideoInfo) -> None:
    """Write the film into `output` as a `suffix` file: each segment's video packets with
    their recorded time stamps, and every audio packet of the input unchanged, interleaved
    by time."""
    av = require("av", "video")
    fmt = CONTAINERS[suffix.lower()]
    opened = [av.open(str(path)) for path, _ in segments]
    try:
        with av.open(str(output), "w", format=fmt, options=_mux_options(fmt, info)) as out, \
                (_open(info.path) if info.audio else contextlib.nullcontext()) as source:
            video = out.add_stream_from_template(opened[0].streams.video[0])
            video.time_base = info.time_base
            audio = ({s.index: out.add_stream_from_template(s) for s in source.streams.audio}
                     if source is not None else {})
            for _, _, packet in heapq.merge(_video_packets(opened, segments, video, info),
                                            _audio_packets(source, audio),
                                            key=lambda item: item[:2]):
                out.mux(packet)
    except (av.FFmpegError, OSError) as e:
        raise VideoWriteError(f"cannot write {output}: {_reason(e)}") from None
    finally:
        for container in opened:
            container.close()


def _durations(segments, info: VideoInfo) -> dict[int, int]:
    """Each frame's duration, up to the next frame's time stamp (the last: one nominal
    frame), so the container's frame rate and length are the input's."""
    order = sorted(pts for _, stamps in segments for pts, _, _ in stamps)
    ends = order[1:] + [order[-1] + info.duration_tick]
    return {pts: end - pts for pts, end in zip(order, ends)}


def _video_packets(opened, segments, stream, info: VideoInfo):
    durations = _durations(segments, info)
    for container, (path, stamps) in zip(opened, segments):
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        if len(packets) != len(stamps):
            raise VideoWriteError(f"{path}: {len(packets)} packets, {len(stamps)} recorded "
                                  "(damaged segment; delete it and run again)")
        for packet, (pts, dts, _) in zip(packets, stamps):
            packet.pts, packet.dts, packet.duration = pts, dts, durations[pts]
            packet.time_base, packet.stream = info.time_base, stream
            yield float(dts * info.time_base), 0, packet


def _audio_packets(source, audio: dict):
    if not audio:
        return
    for packet in source.demux([source.streams[i] for i in audio]):
        if not packet.size:
            continue
        when = packet.dts if packet.dts is not None else packet.pts
        seconds = float(when * packet.time_base) if when is not None else 0.0
        packet.stream = audio[packet.stream_index]
        yield seconds, 1, packet


def count_frames(path: Path) -> tuple[int, int, int]:
    """(video packets, width, height) of a written file: the check before it is named."""
    with _open(path) as container:
        stream = container.streams.video[0]
        count = sum(1 for p in container.demux(stream) if p.size)
        return count, stream.codec_context.width, stream.codec_context.height
