"""Film: colourise a video file or a folder of numbered frames without flicker.

    from jaxcolor.inference.video import Settings, colorize_video, open_source
    report = colorize_video(colorizer, open_source(path, fps, max_pixels), output, Settings())

Modules, in the order a frame meets them:

  sources   what is coloured: a video file (`io`) or a folder of frames, as one stream of
            frames with time stamps, entered at any frame (a resumed run)
  io        PyAV: probe a file, decode in order with time stamps (seeking to resume),
            encode one segment
  temporal  DIS optical flow at render size, colour carried along the motion, cuts;
            `TemporalColorizer` between G and the compose
  segments  OUTPUT.partial/: finished segments, the carry, the done mark
  mux       assemble the film from the segments and the input's audio
  lock      one run per output at a time; temporaries of killed runs removed
  film      `colorize_video`: the run from source to checked, named output

Only PyAV and OpenCV are optional (`pip install 'jaxcolor[video]'`), imported where they
are used through `jaxcolor.errors.require`. Names are resolved lazily, so importing one
module does not load the others (the film I/O does not load the optical flow).
"""

__all__ = ["Report", "Settings", "colorize_video", "open_source"]


def __getattr__(name):
    if name in ("Report", "Settings", "colorize_video"):
        from jaxcolor.inference.video import film

        return getattr(film, name)
    if name == "open_source":
        from jaxcolor.inference.video.sources import open_source

        return open_source
    raise AttributeError(f"module 'jaxcolor.inference.video' has no attribute {name!r}")
