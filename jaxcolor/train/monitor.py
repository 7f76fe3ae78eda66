"""What a run reports: console progress, TensorBoard scalars and images. Reporting only:
the numbers come from the steps and from validation (`train.validation`).

TensorBoard (tensorboardX, under workdir/tb):
  train/*   every loss term, D's mean logits on real and fake, learning rates, gradient norms
  perf/*    images/s, step time, fraction of step time spent waiting for data, and the host's
            own milliseconds per step (step time less the waits for data and for the
            device: if it nears the device's step time, the host holds the device back)
  val/*     the evaluator's summary of the validation split (`jaxcolor.evaluator`: PSNR,
            SSIM, |ab| error, AuC and colourfulness of the prediction and of the gray image,
            the truth's colourfulness, delta-CF), the best-checkpoint score; and an image
            grid of a fixed probe set
  config    the run config as text
The console gets one line per `log_every` steps: phase, step/total, losses, images/s, ETA.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import jax
import numpy as np
from absl import logging
from PIL import Image

from jaxcolor import color
from jaxcolor.progress import format_duration

_CONSOLE_KEYS = ("g/l1", "g/adv", "d/loss")


def image_grid(L8: np.ndarray, ab8_true: np.ndarray, ab_pred_norm: np.ndarray) -> np.ndarray:
    """Rows of (gray | predicted | true) uint8 RGB tiles, one row per image: [n*H, 3*W, 3]."""
    L = L8.astype(np.float32) / color.L8_SCALE
    zeros = np.zeros(L.shape + (2,), np.float32)
    true_ab = ab8_true.astype(np.float32) - color.AB8_OFFSET
    pred_ab = color.denormalize_ab(np.asarray(ab_pred_norm, np.float32))
    tiles = [color.rgb01_to_uint8(color.lab_to_rgb_np(np.concatenate([L[..., None], ab], -1)))
             for ab in (zeros, pred_ab, true_ab)]
    rows = np.concatenate(tiles, axis=2)  # [n, H, 3W, 3]
    return rows.reshape(-1, rows.shape[2], 3)


class Monitor:
    """Console + TensorBoard. Only process 0 writes; every process computes the same numbers."""

    def __init__(self, workdir: Path, config, *, total_steps: int, start_step: int):
        self.workdir = Path(workdir)
        self.config = config
        self.total = total_steps
        self.log_every = max(int(config.log_every), 1)
        self.is_writer = jax.process_index() == 0
        self.writer = None
        if self.is_writer:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(self.workdir / "tb"))
            if start_step == 0:
                self.writer.add_text("config", f"```\n{config}\n```", 0)
        self._window = collections.defaultdict(list)
        self._step_seconds = 0.0
        self._wait_seconds = 0.0
        self._device_seconds = 0.0
        self._steps_in_window = 0
        self._images = 0
        self._started = time.perf_counter()
        self._start_step = start_step

    def step_timing(self, seconds: float, data_wait: float, device_wait: float,
                    images: int) -> None:
        """One step's wall time, how much of it the host waited for data and for the
        device (fetching the previous step's metrics), and its batch (which changes
        between the stages of progressive training)."""
        self._step_seconds += seconds
        self._wait_seconds += data_wait
        self._device_seconds += device_wait
        self._steps_in_window += 1
        self._images += int(images)

    def record(self, step: int, phase: str, metrics: dict[str, float]) -> None:
        """Metrics of `step` (already fetched); logs the window mean every `log_every`."""
        for k, v in metrics.items():
            self._window[k].append(v)
        done = step + 1
        if done % self.log_every and done != self.total:
            return
        means = {k: float(np.mean(v)) for k, v in self._window.items()}
        n = max(self._steps_in_window, 1)
        step_time = self._step_seconds / n
        perf = {"perf/images_per_sec": self._images / max(self._step_seconds, 1e-9),
                "perf/step_seconds": step_time,
                "perf/data_wait_fraction": self._wait_seconds / max(self._step_seconds, 1e-9),
                "perf/host_ms_per_step": 1000 * (self._step_seconds - self._wait_seconds
                                                 - self._device_seconds) / n}
        if self.writer is not None:
            for k, v in {**{f"train/{k}": v for k, v in means.items()}, **perf}.items():
                self.writer.add_scalar(k, v, done)
        elapsed = time.perf_counter() - self._started
        rate = (done - self._start_step) / max(elapsed, 1e-9)
        losses = "  ".join(f"{k} {means[k]:.4f}" for k in _CONSOLE_KEYS if k in means)
        logging.info("[%s] step %d/%d  %s  %.1f img/s  ETA %s", phase, done, self.total, losses,
                     perf["perf/images_per_sec"],
                     format_duration((self.total - done) / max(rate, 1e-9)))
        self._window.clear()
        self._step_seconds = self._wait_seconds = self._device_seconds = 0.0
        self._steps_in_window = self._images = 0

    def write_eval(self, step: int, summary: dict[str, float], probe) -> None:
        """A validation summary (with its `score`) and the probe grid of (L8, ab8, ab_pred)."""
        m = summary
        logging.info("[eval] step %d  |ab| err %.2f  PSNR %.2f (gray %.2f)  CF %.1f (true %.1f, "
                     "delta %.1f)  score %.3f on %d images", step, m["ab_mae"], m["psnr"],
                     m["psnr_gray"], m["cf"], m["cf_true"], m["delta_cf"],
                     m.get("score", float("nan")), int(m["images"]))
        if self.writer is None:
            return
        for k, v in m.items():
            self.writer.add_scalar(f"val/{k}", v, step)
        if probe is not None:
            self.writer.add_image("val/gray_pred_true", image_grid(*probe), step,
                                  dataformats="HWC")
        self.writer.flush()

    def write_samples(self, probe) -> Path | None:
        """Save the probe grid (gray | predicted | true) of the final state as a PNG."""
        if not self.is_writer or probe is None:
            return None
        path = self.workdir / "samples.png"
        Image.fromarray(image_grid(*probe)).save(path)
        logging.info("Wrote %s (gray | predicted | true)", path)
        return path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

