"""Temporal consistency for film: colour carried along the motion, so frames do not flicker.

A photo model colours each frame on its own, and small changes between frames (grain,
exposure flicker, a face turning) move its colour from frame to frame: the flicker that
frame-by-frame colourisers are known for. Here each frame's predicted colour is blended
with the previous frame's *output* colour, carried to the current frame along the optical
flow, wherever that carry is trustworthy:

    out_t = pred_t + strength * confidence * (warp(out_{t-1}) - pred_t)          (ab only)

  * Flow: OpenCV's DIS optical flow (Kroeger et al. 2016) between the lightness of frames
    t-1 and t, both ways, at the render size (the small square the network sees; the part
    of it the frame fills). ab only exists at that size before the guided upsampling, and
    the upsampling is a fixed function of each frame's own full-resolution L, so colour that
    is consistent along the motion there stays consistent at full resolution.
  * Confidence, per pixel, in [0, 1]: the forward-backward check (the backward flow and the
    forward flow at the point it lands on must cancel, Sundaram et al. 2010's rule, also
    Lai et al. 2018's occlusion mask), the landing point inside the previous frame, and
    lightness agreement (|L_t - warp(L_{t-1})|, after removing the frame's median
    difference so that the exposure flicker of old prints does not count as occlusion) as
    a Gaussian weight. Occluded, disoccluded and badly tracked pixels take the prediction.
  * Flat areas: in a textureless area (an overexposed sky, a wall) the flow is not
    determined by the picture, only by what DIS's smoothing carries in from the nearest
    texture, often a fast-moving object's motion; the two directions then disagree though
    every landing point in the area has the same lightness and the same colour. Where the
    frame's local lightness gradient is below `flat_gradient`, a landing point inside the
    previous frame is trusted without the forward-backward check, and the lightness check
    alone decides. Noise that survives the reduction to render size (a noisy overexposed
    sky, the grain of a small or coarse-grained film) makes this common: DIS follows it at
    random, and without this rule a grainy shot would lose its carry there.
  * Motion boundaries: DIS's flow is smooth across the edge of a moving object, so the
    background the object uncovers gets a flow half-way to the object's and passes the
    forward-backward check, and the lightness check, whose warp blends the two sides; the
    object's colour would then be dragged onto that background and stay there, carried
    along with it (a trail). Where the flow's gradient marks a motion boundary (Sundaram et
    al. 2010's second rule, |grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002), the carried
    colour must also agree with the prediction (a Gaussian weight on their ab distance):
    small frame-to-frame changes are still smoothed there, another object's colour is not.
  * Cuts: when too few of the textured pixels can be tracked (flat areas agree with any
    flow, across a cut too), or the lightness histograms of the two frames differ too
    much, the frame starts afresh (out_t = pred_t, exactly): colour is never dragged
    across a cut.
  * The blend keeps chroma: the result's ab magnitude is the same blend of the two
    magnitudes, so averaging two colours of slightly different hue does not wash the film
    out towards gray (colourfulness stays that of the predictions).

`strength` s is the weight of the carried colour. Along a tracked trajectory this is an
exponential moving average whose memory is 1 / (1 - s) frames: prediction noise that is
independent between frames shrinks by sqrt((1 - s) / (1 + s)) (a third at 0.8), and a real
change of colour is followed within a few frames. strength 0 is frame by frame.

Why this design: DIS is the fastest dense flow that OpenCV ships for the CPU, and at render
size (a few hundred pixels a side) two flows, three remaps and the arithmetic cost
milliseconds per frame on one core, small beside G on a CPU; the flows depend only on the
input, so they run in worker threads while G runs, and only the blend is sequential. A
learned flow or a recurrent colouriser (TCVC, DeepRemaster) would need training data of
film and cost more than G itself. The per-frame cost is measured in BENCHMARKS.md
(`benchmarks/video.py`).

`TemporalColorizer` puts this between G and the full-resolution compose of `Colorizer`,
with the interface `jaxcolor.inference.pipeline.process` drives, so frames are batched,
decoded ahead and finished in worker threads exactly as photos are.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading
from typing import Sequence

import numpy as np

from jaxcolor.errors import UsageError, require
from jaxcolor.inference.colorizer import Colorizer, Prepared
from jaxcolor.inference.photo import crop_render

@dataclasses.dataclass(frozen=True)
class Consistency:
    """How colour is carried from frame to frame (see the module docstring).

    strength: weight of the carried colour, in [0, 1); 0 colours each frame on its own.
    lightness_sigma: scale, in L units (0..100), of the Gaussian weight of the lightness
      check (after the frame's median difference is removed).
    boundary_sigma: scale, in ab units, of the Gaussian weight of the colour check at motion
      boundaries (the carried colour against the prediction).
    flat_gradient: lightness gradient (L units per pixel at render size, smoothed) below
      which an area is flat, and its flow needs no forward-backward check.
    cut_fraction: a frame where a smaller share of the textured (not flat) pixels than this
      can be tracked is a new shot.
    cut_histogram: total-variation distance between the frames' L histograms (0..1) above
      which the frame is a new shot.
    """

    strength: float = 0.8
    lightness_sigma: float = 4.0
    boundary_sigma: float = 20.0
    flat_gradient: float = 4.0
    cut_fraction: float = 0.4
    cut_histogram: float = 0.35

    def __post_init__(self):
        if not 0.0 <= self.strength < 1.0:
            raise UsageError(f"temporal strength must lie in [0, 1), got {self.strength}")


@dataclasses.dataclass
class Carry:
    """What frame t needs of frame t-1: its lightness and output ab at render size (the part
    of the render square the frame fills), and the colour hints it was given (its own and
    those carried into it: `carry_hint`), if any."""

    L: np.ndarray  # float32 [h, w], 0..100
    ab: np.ndarray  # float32 [h, w, 2]
    hint: np.ndarray | None = None  # float32 [h, w, 3]: `hints.hint_map`'s layout

    def to_arrays(self) -> dict[str, np.ndarray]:
        hint = {} if self.hint is None else {"hint": self.hint}
        return {"L": self.L, "ab": self.ab, **hint}

    @classmethod
    def from_arrays(cls, arrays) -> "Carry":
        hint = np.asarray(arrays["hint"], np.float32) if "hint" in arrays else None
        return cls(np.asarray(arrays["L"], np.float32), np.asarray(arrays["ab"], np.float32),
                   hint)


# --------------------------------------------------------------------------------------
# Flow and confidence.
# --------------------------------------------------------------------------------------

_local = threading.local()


def _dis():
    """One DIS instance per thread (they keep buffers; not shareable between threads)."""
    if getattr(_local, "dis", None) is None:
        cv2 = require("cv2", "video")
        _local.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _local.dis


def _gray8(L: np.ndarray) -> np.ndarray:
    return np.clip(L * 2.55 + 0.5, 0, 255).astype(np.uint8)


@dataclasses.dataclass
class Flow:
    """Where each pixel of frame t was in frame t-1 (`map_x`, `map_y`, absolute positions
    for cv2.remap), whether that lands inside frame t-1 (`inside`), how far to trust it
    (`trust` in {0, 1}: forward-backward consistent and inside), whether it lies on a
    motion boundary (`boundary`), and frame t's local lightness gradient (`gradient`, L
    units per pixel, smoothed: how textured the picture is there)."""

    map_x: np.ndarray
    map_y: np.ndarray
    inside: np.ndarray
    trust: np.ndarray
    boundary: np.ndarray
    gradient: np.ndarray


def flow(L_prev: np.ndarray, L: np.ndarray) -> Flow:
    """Backward flow t -> t-1 with the forward-backward check (pure; any thread)."""
    cv2 = require("cv2", "video")
    prev8, cur8 = _gray8(L_prev), _gray8(L)
    backward = _dis().calc(cur8, prev8, None)  # L(x) ~ L_prev(x + backward(x))
    forward = _dis().calc(prev8, cur8, None)
    h, w = L.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + backward[..., 0], gy + backward[..., 1]
    fw = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.sum((backward + fw) ** 2, axis=-1)
    bound = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(fw**2, axis=-1)) + 0.5
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    gradient = cv2.GaussianBlur(np.hypot(*np.gradient(L)), (0, 0), 2.0)
    return Flow(map_x, map_y, inside, ((err <= bound) & inside).astype(np.float32),
                motion_boundary(backward), gradient)


def motion_boundary(displacement: np.ndarray) -> np.ndarray:
    """Sundaram et al. 2010's motion-boundary rule on a flow field [h, w, 2] (pixels):
    where the flow's gradient is large against the flow itself."""
    gradient = sum(np.square(d) for c in (0, 1) for d in np.gradient(displacement[..., c]))
    return gradient > 0.01 * np.sum(displacement**2, axis=-1) + 0.002


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """Agreement weight in (0, 1] of a difference `x` on the scale `sigma`."""
    return np.exp(-0.5 * (x / sigma) ** 2)


def _histogram_distance(L_prev: np.ndarray, L: np.ndarray, bins: int = 16) -> float:
    """Total-variation distance (0..1) of two lightness histograms."""
    hp = np.histogram(L_prev, bins=bins, range=(0, 100))[0] / L_prev.size
    hc = np.histogram(L, bins=bins, range=(0, 100))[0] / L.size
    return 0.5 * float(np.abs(hp - hc).sum())


# --------------------------------------------------------------------------------------
# The blend.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Step:
    """One frame's outcome: its output ab, and whether it started a new shot."""

    ab: np.ndarray
    cut: bool
    carried: float  # mean weight of the carried colour over the frame


def starts_shot(carry: Carry, L: np.ndarray, moved: Flow, settings: Consistency) -> bool:
    """Whether frame t starts a new shot, from the lightness alone: too few of its textured
    pixels can be tracked (flat areas follow any flow, across a cut too), or its lightness
    histogram is too far from frame t-1's."""
    flat = moved.gradient < settings.flat_gradient
    followed = moved.trust[~flat].mean() if (~flat).any() else 1.0
    return bool(followed < settings.cut_fraction
                or _histogram_distance(carry.L, L) > settings.cut_histogram)


def carry_hint(carry: Carry | None, L: np.ndarray, own: np.ndarray | None,
               moved: Flow | None, settings: Consistency) -> np.ndarray | None:
    """Frame t's colour hints: those placed on it (`own`), over frame t-1's carried along the
    motion where it is trusted (each hinted pixel moves with what it was placed on); a new
    shot drops what came before, so a hint holds through its shot and no further."""
    if carry is None or carry.hint is None or moved is None or carry.L.shape != L.shape \
            or starts_shot(carry, L, moved, settings):
        return own
    cv2 = require("cv2", "video")
    reach = np.maximum(moved.trust, (moved.gradient < settings.flat_gradient) & moved.inside)
    warped = cv2.remap(carry.hint, moved.map_x, moved.map_y, cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped *= (reach > 0)[..., None]
    if own is None:
        return warped if warped[..., 2].any() else None
    return np.where(own[..., 2:] > 0, own, warped)


def blend(carry: Carry | None, L: np.ndarray, pred: np.ndarray, moved: Flow | None,
          settings: Consistency) -> Step:
    """Frame t's output ab from its prediction, frame t-1's carry and the flow between them
    (`moved`: `flow(carry.L, L)`; None when there is no carry)."""
    if carry is None or settings.strength == 0.0 or carry.L.shape != L.shape:
        return Step(pred, cut=carry is not None and carry.L.shape != L.shape, carried=0.0)
    cv2 = require("cv2", "video")
    remap = lambda x: cv2.remap(x, moved.map_x, moved.map_y, cv2.INTER_LINEAR,  # noqa: E731
                                borderMode=cv2.BORDER_REPLICATE)
    diff = L - remap(carry.L)
    flat = moved.gradient < settings.flat_gradient
    if starts_shot(carry, L, moved, settings):
        return Step(pred, cut=True, carried=0.0)
    reach = np.maximum(moved.trust, flat & moved.inside)  # where the carry may come from
    diff -= np.median(diff[reach > 0])  # a global change of exposure is not an occlusion
    agree = _gaussian(diff, settings.lightness_sigma)
    warped = remap(carry.ab)
    gap = np.linalg.norm(warped - pred, axis=-1)
    agree *= np.where(moved.boundary, _gaussian(gap, settings.boundary_sigma), 1.0)
    weight = (settings.strength * reach * agree)[..., None]
    if (weight[..., 0] > 0.5 * settings.strength).mean() < settings.cut_fraction:
        return Step(pred, cut=True, carried=0.0)
    mixed = pred + weight * (warped - pred)
    # Keep chroma: the blended vector's length is the blend of the two lengths.
    length = np.linalg.norm(mixed, axis=-1, keepdims=True)
    target = (np.linalg.norm(pred, axis=-1, keepdims=True) * (1 - weight)
              + np.linalg.norm(warped, axis=-1, keepdims=True) * weight)
    scale = np.where(length > 1e-3, target / np.maximum(length, 1e-3), 1.0)
    return Step((mixed * scale).astype(np.float32), cut=False, carried=float(weight.mean()))


# --------------------------------------------------------------------------------------
# Between G and the compose.
# --------------------------------------------------------------------------------------


class TemporalColorizer:
    """A `Colorizer` for a stream of consecutive frames: `prepare` and `batch_size` as the
    colouriser's; `submit` runs G, computes the flows between consecutive frames in worker
    threads meanwhile, blends each frame with the previous one's output in order
    (`blend`), and starts the compose of the blended colour (`Colorizer.compose_batch`).

    Frames must be submitted in order. A batch submitted again (`pipeline.process` retries
    a failed batch frame by frame) reuses the colour already blended for those frames, so a
    retry never advances the carry twice. `carry` is the state after the last frame; set it
    to resume a film where a segment ended.
    """

    def __init__(self, colorizer: Colorizer, settings: Consistency,
                 carry: Carry | None = None, threads: int | None = None):
        self.colorizer, self.settings, self.carry = colorizer, settings, carry
        self.batch_size = colorizer.batch_size
        self.cuts = 0
        self.frames = 0
        self._carried = 0.0
        self._pool = concurrent.futures.ThreadPoolExecutor(threads or os.cpu_count() or 1)
        self._done: dict[int, tuple[Prepared, np.ndarray]] = {}  # id -> (prepared, ab)

    def prepare(self, photo) -> Prepared:
        return self.colorizer.prepare(photo)

    @property
    def mean_carried(self) -> float:
        """Mean weight of the carried colour over the frames so far."""
        return self._carried / max(self.frames, 1)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, prepared: Sequence[Prepared]):
        prepared = list(prepared)
        if all(id(p) in self._done for p in prepared):  # a retry of blended frames
            ab = np.stack([self._square(p, self._done[id(p)][1]) for p in prepared])
            return self.colorizer.compose_batch(prepared, ab)
        if any(id(p) in self._done for p in prepared):
            raise RuntimeError("TemporalColorizer: frames submitted out of order")
        L = [np.ascontiguousarray(crop_render(p.L_render, p.inner)) for p in prepared]
        previous = [None if self.carry is None else self.carry.L] + L[:-1]
        hinted = any(p.hint is not None for p in prepared) or (
            self.carry is not None and self.carry.hint is not None)
        flows = [None if prev is None or (self.settings.strength == 0.0 and not hinted)
                 or prev.shape != cur.shape else self._pool.submit(flow, prev, cur)
                 for prev, cur in zip(previous, L)]
        hints = self._carry_hints(prepared, L, flows) if hinted else [None] * len(prepared)
        if hinted:  # G sees each frame's hints, its own and those carried into it
            prepared = [dataclasses.replace(p, hint=None if h is None else self._square(p, h))
                        for p, h in zip(prepared, hints)]
        predicted = np.asarray(self.colorizer.predict(prepared), np.float32)[:len(prepared)]
        out = np.array(predicted)
        for i, p in enumerate(prepared):
            pred = np.ascontiguousarray(crop_render(predicted[i], p.inner))
            moved = flows[i].result() if flows[i] is not None else None
            step = blend(self.carry, L[i], pred, moved, self.settings)
            self.carry = Carry(L[i], step.ab, hints[i])
            self.cuts += step.cut
            self.frames += 1
            self._carried += step.carried
            out[i] = self._square(p, step.ab, predicted[i])
            self._remember(p, step.ab)
        return self.colorizer.compose_batch(prepared, out)

    def _carry_hints(self, prepared: list[Prepared], L: list[np.ndarray],
                     flows: list) -> list[np.ndarray | None]:
        """Each frame's hints (inside its part of the square): `carry_hint` frame by frame,
        from the carry on. Waits for the batch's flows: G needs the hints."""
        out, carry = [], self.carry
        for i, p in enumerate(prepared):
            own = None if p.hint is None else np.ascontiguousarray(crop_render(p.hint, p.inner))
            moved = flows[i].result() if flows[i] is not None else None
            out.append(carry_hint(carry, L[i], own, moved, self.settings))
            carry = Carry(L[i], np.zeros(L[i].shape + (2,), np.float32), out[-1])
        return out

    @staticmethod
    def _square(p: Prepared, inner: np.ndarray, around: np.ndarray | None = None):
        """A map of the frame's part of the render square put back into a full square."""
        R = p.L_render.shape[0]
        square = (np.zeros((R, R, inner.shape[-1]), np.float32) if around is None
                  else np.array(around))
        rh, rw = p.inner
        top, left = (R - rh) // 2, (R - rw) // 2
        square[top:top + rh, left:left + rw] = inner
        return square

    def _remember(self, p: Prepared, ab: np.ndarray) -> None:
        self._done[id(p)] = (p, ab)  # the Prepared is kept alive, so its id stays unique
        while len(self._done) > 4 * self.batch_size:
            self._done.pop(next(iter(self._done)))
