"""Colour hints: "this point of the photo was this colour", as a user gives them.

One hint is `{"x": px, "y": px, "color": "#rrggbb", "radius": px}` in the original photo's
pixel coordinates (x to the right, y down, from the top-left pixel's centre; radius default
`DEFAULT_RADIUS`; a film's hints also carry `"frame": n`). Its colour is the picked colour's
a/b: its lightness is ignored, the photo's own L is always kept. A hints file
(`jaxcolor colorize --hints FILE.json`) maps each photo, by its path relative to `--input`
(or its name when the input is one file), to a list of hints; photos without an entry are
colourised automatically.

Bad hints are usage errors (exit 2) naming the file and the entry, found before any work.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np

from jaxcolor import color
from jaxcolor.errors import UsageError

DEFAULT_RADIUS = 3.0
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_FIELDS = {"x", "y", "color", "radius", "frame"}


class HintError(UsageError):
    """A hint, or a hints file, that cannot be used (names the file and the entry)."""


@dataclasses.dataclass(frozen=True)
class Hint:
    x: float
    y: float
    color: str  # "#rrggbb"
    radius: float = DEFAULT_RADIUS
    frame: int | None = None  # films: the frame it is placed on

    @property
    def ab(self) -> tuple[float, float]:
        """The hinted colour's CIELAB a, b (its L is not used)."""
        rgb = np.array([[int(self.color[i:i + 2], 16) for i in (1, 3, 5)]], np.uint8)
        a, b = color.rgb_to_lab_np(rgb)[0, 1:]
        return float(a), float(b)

    def to_json(self) -> dict:
        out = {"x": self.x, "y": self.y, "color": self.color.lower(), "radius": self.radius}
        return out if self.frame is None else {**out, "frame": self.frame}


def _number(entry: dict, field: str, where: str, default=None) -> float:
    value = entry.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HintError(f"{where}: {field!r} must be a number, got {value!r}")
    return float(value)


def parse(entries, where: str, *, film: bool = False) -> list[Hint]:
    """A JSON list of hints -> `Hint`s; `where` names the list in messages ("hints.json:
    photo.jpg"). With `film`, every hint needs a whole, non-negative `frame`."""
    if not isinstance(entries, list):
        raise HintError(f"{where}: expected a list of hints, got {type(entries).__name__}")
    hints = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise HintError(f"{at}: expected {{\"x\", \"y\", \"color\", \"radius\"}}, got "
                            f"{entry!r}")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise HintError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
        x, y = _number(entry, "x", at), _number(entry, "y", at)
        radius = _number(entry, "radius", at, DEFAULT_RADIUS)
        if radius < 0:
            raise HintError(f"{at}: radius must be >= 0, got {radius:g}")
        value = entry.get("color")
        if not isinstance(value, str) or not _COLOR.match(value):
            raise HintError(f"{at}: color must be \"#rrggbb\", got {value!r}")
        frame = None
        if film or "frame" in entry:
            frame = entry.get("frame")
            if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
                raise HintError(f"{at}: frame must be a whole number >= 0, got {frame!r}")
        hints.append(Hint(x, y, value, radius, frame))
    return hints


def check_inside(hints: list[Hint], width: int, height: int, where: str) -> None:
    """Refuse a hint outside a width x height photo (pixel centres span 0..width-1)."""
    for i, hint in enumerate(hints):
        if not (0 <= hint.x <= width - 1 and 0 <= hint.y <= height - 1):
            raise HintError(f"{where}[{i}]: ({hint.x:g}, {hint.y:g}) is outside the "
                            f"{width}x{height} photo")


def load_file(path: str | Path, *, film: bool = False) -> dict[str, list[Hint]]:
    """A hints file -> {photo name: hints}, every entry checked."""
    path = Path(path).expanduser()
    try:
        document = json.loads(path.read_text())
    except OSError as e:
        raise HintError(f"{path}: cannot read the hints file ({e.strerror or e})") from None
    except ValueError as e:
        raise HintError(f"{path}: not JSON ({e})") from None
    if not isinstance(document, dict):
        raise HintError(f"{path}: expected an object mapping each photo to its hints")
    return {str(name): parse(entries, f"{path}: {name}", film=film)
            for name, entries in document.items()}


def hint_map(hints: list[Hint], size: tuple[int, int], render_size: int) -> np.ndarray:
    """The generator's hint input for a photo of `size` (h, w) seen in the render square:
    [R, R, 3] float32 of (a/110, b/110, 1) on each hint's disc and 0 elsewhere
    (`models.hint_branch`). The photo sits in the square as `photo.render_lightness` puts
    it (aspect kept, centred); a hint's disc is its radius scaled likewise, at least the one
    render pixel nearest its centre, as training's smallest patches are. Later hints cover
    earlier ones where they overlap."""
    from jaxcolor.inference.photo import render_shape

    h, w = size
    rh, rw = render_shape(h, w, render_size)
    top, left = (render_size - rh) // 2, (render_size - rw) // 2
    scale = rw / w
    out = np.zeros((render_size, render_size, 3), np.float32)
    ys, xs = np.mgrid[:render_size, :render_size]
    for hint in hints:
        cx = left + (hint.x + 0.5) * rw / w - 0.5
        cy = top + (hint.y + 0.5) * rh / h - 0.5
        disc = (xs - cx) ** 2 + (ys - cy) ** 2 <= (hint.radius * scale) ** 2
        disc[int(np.clip(round(cy), 0, render_size - 1)),
             int(np.clip(round(cx), 0, render_size - 1))] = True
        a, b = hint.ab
        out[disc] = (a / color.AB_SCALE, b / color.AB_SCALE, 1.0)
    return out
