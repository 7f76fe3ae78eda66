"""The training loop end to end on tiny records: the three phases, TensorBoard logs, the
sample grid, checkpoints, an exact resume from a SIGTERM inside the GAN phase, a NaN loss,
and the errors a user sees for a bad config (in process and through experiments/run.py)."""

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

from jaxcolor import color
from jaxcolor.data.records import Records, RecordsError
from jaxcolor.errors import MissingPathError
from jaxcolor.train import loop
from jaxcolor.train import steps as steps_lib
from jaxcolor.train.inputs import DataConfigError
from tests.train.helpers import restore_saved_state, train_recording
from tests.support import (CROP, D_PRETRAIN, GAN, PRETRAIN, REPO, assert_trees_equal,
                           load_config, run_python, tiny_config)

TOTAL = PRETRAIN + D_PRETRAIN + GAN


def _checkpoint_steps(workdir) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


# ---- one run, start to finish ---------------------------------------------------------------


def test_a_run_goes_through_the_three_phases_in_order(finished_run):
    steps = [step for step, _, _ in finished_run.recorded]
    phases = [phase for _, phase, _ in finished_run.recorded]
    assert steps == list(range(TOTAL))
    assert phases == ["pretrain"] * PRETRAIN + ["d_pretrain"] * D_PRETRAIN + ["gan"] * GAN
    by_phase = {phase: set(metrics) for _, phase, metrics in finished_run.recorded}
    assert {"g/l1", "g/lr", "g/grad_norm"} <= by_phase["pretrain"]
    assert not any(k.startswith("d/") for k in by_phase["pretrain"])
    assert {"d/loss", "d/real_logit", "d/fake_logit"} <= by_phase["d_pretrain"]
    assert not any(k.startswith("g/") for k in by_phase["d_pretrain"])
    assert {"g/loss", "g/adv", "g/l1", "d/loss"} <= by_phase["gan"]
    assert finished_run.returned == finished_run.recorded[-1][2]
    assert all(np.isfinite(v) for _, _, m in finished_run.recorded for v in m.values())


def test_checkpoints_are_written_at_the_cadence_and_the_end(finished_run):
    assert _checkpoint_steps(finished_run.workdir) == [5, TOTAL]
    saved = restore_saved_state(finished_run.workdir, TOTAL)
    assert int(saved["step"]) == TOTAL


def _events(workdir):
    acc = event_accumulator.EventAccumulator(
        str(workdir / "tb"), size_guidance={event_accumulator.SCALARS: 0,
                                            event_accumulator.IMAGES: 0,
                                            event_accumulator.TENSORS: 0})
    return acc.Reload()


def test_tensorboard_holds_losses_logits_rates_perf_validation_images_and_config(finished_run):
    events = _events(finished_run.workdir)
    tags = events.Tags()
    expected = {"train/g/l1", "train/g/adv", "train/g/lr", "train/g/grad_norm", "train/d/loss",
                "train/d/real_logit", "train/d/fake_logit", "perf/images_per_sec",
                "perf/data_wait_fraction", "val/ab_mae", "val/psnr", "val/psnr_gray", "val/ssim",
                "val/ab_auc", "val/cf", "val/cf_true", "val/delta_cf", "val/score"}
    assert expected <= set(tags["scalars"]), expected - set(tags["scalars"])
    assert "val/gray_pred_true" in tags["images"]
    assert "config/text_summary" in tags["tensors"]
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "decoder_widths" in config_text

    # One point per step (log_every=1), equal to the step's metrics; G's L1 in G's phases.
    l1 = {e.step: e.value for e in events.Scalars("train/g/l1")}
    recorded = {step + 1: m["g/l1"] for step, _, m in finished_run.recorded if "g/l1" in m}
    assert l1.keys() == recorded.keys()
    np.testing.assert_allclose([l1[s] for s in recorded], list(recorded.values()), rtol=1e-6)
    assert [e.step for e in events.Scalars("val/ab_mae")] == [5, TOTAL]
    assert all(0 <= e.value <= 1 for e in events.Scalars("perf/data_wait_fraction"))


def test_samples_png_shows_gray_predicted_and_true_side_by_side(finished_run, records_dir):
    grid = np.asarray(Image.open(finished_run.workdir / "samples.png").convert("RGB"))
    probes = tiny_config(records_dir).probe_images
    assert grid.shape == (probes * CROP, 3 * CROP, 3)
    gray, predicted, true = (grid[:CROP, i * CROP:(i + 1) * CROP].astype(int) for i in range(3))
    assert np.abs(gray - gray[..., :1]).max() <= 1  # R == G == B: the input's lightness only
    # The right tile is the first validation record's centre crop in its own colours.
    records = Records(records_dir)
    L8, ab8 = records.read(records.split("val")[:1])
    lo = (records.image_size[0] - CROP) // 2
    window = (0, slice(lo, lo + CROP), slice(lo, lo + CROP))
    rgb = color.rgb01_to_uint8(color.lab_to_rgb_np(color.decode_lab8(L8[window], ab8[window])))
    assert np.abs(true - rgb.astype(int)).max() <= 1
    assert np.abs(predicted - true).mean() > 0  # the prediction is G's, not a copy


# ---- resume --------------------------------------------------------------------------------


def test_sigterm_inside_the_gan_phase_then_resume_matches_an_uninterrupted_run(
        finished_run, records_dir, tmp_path, capsys):
    stop_after = PRETRAIN + D_PRETRAIN + 2  # two GAN steps done, two to go

    def send_sigterm(dispatched):
        if dispatched == stop_after:
            handler = signal.getsignal(signal.SIGTERM)
            assert isinstance(getattr(handler, "__self__", None), loop._StopRequest)
            signal.raise_signal(signal.SIGTERM)  # the real handler, as a scheduler would

    handler_before = signal.getsignal(signal.SIGTERM)
    first = train_recording(tiny_config(records_dir), tmp_path, after_step=send_sigterm)
    assert f"SIGTERM: checkpoint of step {stop_after} saved" in capsys.readouterr().out
    assert [step for step, _, _ in first.recorded] == list(range(stop_after))
    assert _checkpoint_steps(tmp_path)[-1] == stop_after
    assert not (tmp_path / "samples.png").exists()  # stopped at once: no final evaluation
    assert signal.getsignal(signal.SIGTERM) == handler_before  # restored on the way out

    second = train_recording(tiny_config(records_dir), tmp_path)
    assert [step for step, _, _ in second.recorded] == list(range(stop_after, TOTAL))
    # Same losses step by step (same batches: the data iterator was restored too) ...
    assert first.recorded + second.recorded == finished_run.recorded
    # ... and bitwise the same final state: G, D, both optimisers, EMA, RNG.
    assert_trees_equal(restore_saved_state(tmp_path, TOTAL),
                       restore_saved_state(finished_run.workdir, TOTAL))


def test_a_finished_run_is_not_trained_further(finished_run, records_dir, tmp_path):
    shutil.copytree(finished_run.workdir / "checkpoints", tmp_path / "checkpoints")
    again = train_recording(tiny_config(records_dir), tmp_path)
    assert again.recorded == []
    assert _checkpoint_steps(tmp_path) == [5, TOTAL]


# ---- a loss that becomes NaN ---------------------------------------------------------------


def test_nan_loss_raises_naming_step_and_loss_and_keeps_last_good_checkpoint(
        records_dir, compile_cache, tmp_path, monkeypatch):
    # 8 pretrain steps (G's update count, hence its compiled step, as in the other runs),
    # checkpoints every 3. Before step 6 runs, G's weights are poisoned
    # (as a diverging update would leave them): step 6's loss is NaN, and step 6 is a
    # checkpoint step, so the loop must check the loss before saving.
    config = tiny_config(records_dir, pretrain_steps=PRETRAIN + GAN, gan_steps=0)
    config.checkpoint_every, config.eval_every = 3, 100
    build_steps = steps_lib.build_steps

    def build_diverging_steps(*args, **kwargs):
        steps = build_steps(*args, **kwargs)

        def pretrain(state, batch):
            if int(state.step) == 5:
                poisoned = jax.tree.map(lambda x: x * jnp.nan, state.g_params)
                state = state.replace(g_params=poisoned)
            return steps.pretrain(state, batch)

        return dataclasses.replace(steps, pretrain=pretrain)

    monkeypatch.setattr(steps_lib, "build_steps", build_diverging_steps)
    with pytest.raises(loop.NonFiniteLossError, match=r"^step 6: .*\bg/l1 is nan"):
        loop.train_and_evaluate(config, tmp_path)

    assert _checkpoint_steps(tmp_path) == [3]
    saved = restore_saved_state(tmp_path, 3)
    assert int(saved["step"]) == 3
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(saved) if x.dtype.kind == "f")


# ---- configuration errors (all found before anything compiles) ------------------------------


@pytest.fixture
def nothing_compiles(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the state was built before the config error was found")

    monkeypatch.setattr(loop, "setup", must_not_run)


def test_unset_training_data_is_a_config_error(tmp_path, nothing_compiles):
    with pytest.raises(DataConfigError, match=r"config\.data\.train: not set"):
        loop.train_and_evaluate(tiny_config(None), tmp_path)


def test_missing_data_directories_are_named(records_dir, tmp_path, nothing_compiles):
    missing = tmp_path / "no_such_records"
    with pytest.raises(MissingPathError, match=rf"config\.data\.train={re.escape(str(missing))}"
                                               r": no such directory"):
        loop.train_and_evaluate(tiny_config(missing), tmp_path / "work")
    config = tiny_config(records_dir)
    config.data.val = str(missing)
    with pytest.raises(MissingPathError, match=r"config\.data\.val=.*: no such directory"):
        loop.train_and_evaluate(config, tmp_path / "work")


def test_a_directory_that_is_not_records_is_named(tmp_path, nothing_compiles):
    (tmp_path / "photos").mkdir()
    with pytest.raises(RecordsError, match=r"photos/manifest\.json: missing"):
        loop.train_and_evaluate(tiny_config(tmp_path / "photos"), tmp_path / "work")


def _run_py(*flags, timeout=600):
    return run_python(["experiments/run.py", *flags], timeout=timeout)


def test_run_py_rejects_an_unknown_config_key_in_one_line(tmp_path):
    result = _run_py("--config=experiments/configs/demo.py:smoke", f"--workdir={tmp_path}",
                     "--config.model.no_such_key=3")
    assert result.returncode == 2  # usage
    assert "Traceback" not in result.stderr
    mentions = [line for line in result.stderr.splitlines() if "no_such_key" in line]
    assert len(mentions) == 1, result.stderr


def test_run_py_reports_missing_data_as_one_error_line(tmp_path):
    missing = tmp_path / "no_such_records"
    result = _run_py("--config=experiments/configs/gan.py", f"--workdir={tmp_path / 'work'}",
                     f"--config.data.train={missing}", "--config.compilation_cache=")
    assert result.returncode == 2  # usage: a path that does not exist
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: config.data.train={missing}: no such directory"]


# ---- experiments/run.py as a user runs it ----------------------------------------------------


def _tiny_config_file(path, records_dir):
    """A config file for run.py holding the tiny config (so it reuses the compiled steps)."""
    config_json = tiny_config(records_dir).to_json()
    path.write_text("import json\nimport ml_collections\n\n\ndef get_config():\n"
                    f"    return ml_collections.ConfigDict(json.loads({config_json!r}))\n")
    return path


def test_run_py_saves_on_sigterm_exits_0_and_resumes(records_dir, compile_cache, finished_run,
                                                     tmp_path):
    config_file = _tiny_config_file(tmp_path / "tiny.py", records_dir)
    command = [sys.executable, "experiments/run.py", f"--config={config_file}",
               f"--workdir={tmp_path / 'work'}", f"--config.compilation_cache={compile_cache}"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(600, process.kill)
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if re.search(r"\] step \d+/\d+", line) and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                break
        lines.extend(process.stdout)
        process.wait()
    finally:
        watchdog.cancel()
        process.kill()
    output = "".join(lines)
    assert process.returncode == 0, output[-4000:]
    saved = re.search(r"SIGTERM: checkpoint of step (\d+) saved", output)
    assert saved, output[-4000:]
    step = int(saved.group(1))
    assert 1 <= step < TOTAL

    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert re.search(rf"Resumed from \S+/checkpoints/{step} ", resumed.stderr), resumed.stderr
    assert f"step {step + 1}/{TOTAL}" in resumed.stderr
    assert f"step {step}/{TOTAL}" not in resumed.stderr  # no step is trained twice
    assert _checkpoint_steps(tmp_path / "work")[-1] == TOTAL


@pytest.mark.slow
def test_run_py_reports_a_missing_demo_dependency_in_one_line(tmp_path):
    """A missing scikit-image (errors.require) reaches run.py as one line, not a traceback."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "skimage.py").write_text("raise ImportError('scikit-image is not installed')\n")
    result = subprocess.run(
        [sys.executable, "experiments/run.py", "--config=experiments/configs/demo.py:smoke",
         f"--workdir={tmp_path / 'work'}", "--config.compilation_cache="],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pip install 'jaxcolor[demo]'" in errors[0], result.stderr


@pytest.mark.slow
def test_demo_smoke_config_trains_end_to_end(tmp_path):
    """The CI smoke run of the embedded demo: builds its records from scikit-image's photos."""
    result = _run_py("--config=experiments/configs/demo.py:smoke", f"--workdir={tmp_path}",
                     f"--config.compilation_cache={tmp_path / 'xla'}")
    assert result.returncode == 0, result.stderr[-4000:]
    for phase in ("pretrain", "d_pretrain", "gan"):
        assert f"[{phase}] step" in result.stderr
    demo = load_config("demo", "smoke")
    total = demo.phases.pretrain_steps + demo.phases.d_pretrain_steps + demo.phases.gan_steps
    assert _checkpoint_steps(tmp_path)[-1] == total
    crop = demo.data.crop_size
    grid = Image.open(tmp_path / "samples.png")
    assert grid.width == 3 * crop and grid.height % crop == 0 and grid.height >= crop
    assert list((tmp_path / "tb").iterdir())
    assert (tmp_path / "demo_records" / "manifest.json").is_file()
