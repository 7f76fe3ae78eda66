"""Each script's `--table` on a few synthetic JSON lines: the rule that picks the lines (the
newest per configuration, quiet CPUs only, ...) and the Markdown it prints, exactly."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(REPO))  # `benchmarks` is a directory at the repo root
    import importlib

    yield lambda name: importlib.import_module(f"benchmarks.{name}")
    mp.undo()


def line(figure, value, config=None, **fields):
    """A results line as the scripts write it, on a quiet 2-core CPU unless told otherwise."""
    return {"figure": figure, "value": value, "batch": None, "resolution": None, **fields,
            "config": {"config": "experiments/configs/demo.py", "overrides": [],
                       "backbone": "resnet18", **(config or {})},
            "device_kind": fields.get("device_kind", "cpu"), "cpu_count": 2,
            "load_avg_1m": fields.get("load_avg_1m", 1.5), "xla_flags": fields.get("xla_flags", "")}


def write(folder: Path, area: str, lines: list[dict]) -> str:
    path = folder / f"{area}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return str(path)


def printed(capsys, module, argv) -> str:
    assert module.main(argv) is None
    return capsys.readouterr().out.rstrip("\n")


# ---- the shared helpers -----------------------------------------------------------------


def test_numbers_keep_significant_digits_in_fixed_point(bench):
    tables = bench("tables")
    assert [tables.num(v) for v in (21.54, 0.71, 53706.4, 22.0, 0)] == [
        "21.5", "0.71", "53,706", "22", "0"]
    assert tables.num(92.1, 4) == "92.1" and tables.num(None) == ""
    assert tables.span([11.5, 11.2, 11.46], lambda v: f"{v:.1f}") == "11.2-11.5"
    assert tables.span([9.71, 9.68], lambda v: f"{v:.1f}") == "9.7"
    assert tables.markdown(["a", "b"], [["1", ""]]) == "| a | b |\n| --- | --- |\n| 1 | |"


def test_newest_line_per_key_wins_and_none_drops_a_line(bench):
    tables = bench("tables")
    lines = [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "a", "v": 3}, {"k": None, "v": 4}]
    chosen = tables.newest(lines, lambda r: r["k"])
    assert {k: r["v"] for k, r in chosen.items()} == {"a": 3, "b": 2}
    assert list(chosen) == ["a", "b"]  # in the order first seen


def test_a_loaded_or_unrecorded_cpu_is_not_quiet(bench):
    tables = bench("tables")
    assert tables.on_quiet_cpu(line("x", 1, load_avg_1m=3.0))
    assert not tables.on_quiet_cpu(line("x", 1, load_avg_1m=3.1))
    assert not tables.on_quiet_cpu({**line("x", 1), "load_avg_1m": None})
    assert not tables.on_quiet_cpu(line("x", 1, device_kind="NVIDIA H200"))


def test_table_needs_none_of_the_flags_a_measurement_requires(bench, tmp_path, capsys):
    """inference needs a model and photos to measure, video a checkpoint and clips."""
    inference, video = bench("inference"), bench("video")
    assert printed(capsys, inference, ["--table", write(tmp_path, "inference", []), "--only",
                                       "stages"]).startswith("| ms per photo |")
    assert printed(capsys, video, ["--table", write(tmp_path, "video", []), "--only",
                                   "throughput"]) == (
        "| Size | Run | frames/s | CPU share |\n| --- | --- | --- | --- |")


# ---- one script at a time ---------------------------------------------------------------


def flops_line(figure, value, **fields):
    return line(f"flops/{figure}", value, batch=8, resolution=96, g_params=11_639_154,
                d_params=694_689, target_images_per_s=fields.pop("target", None),
                implied_tflops=fields.pop("implied", None),
                config={"d_width": 32, "counted_by": fields.pop(
                    "counted_by", "xla_cost_analysis_of_the_cpu_lowering")}, **fields)


def test_flops_tables_quote_the_cpu_lowering_and_the_targets(bench, tmp_path, capsys):
    path = write(tmp_path, "flops", [
        flops_line("g_forward", 0.7776, counted_by="xla_cost_analysis"),  # the old method
        flops_line("g_forward", 0.7773, target=2300, implied=1.788),
        flops_line("gan_step", 3.9, target=2300, implied=8.97),
        flops_line("gan_step", 3.878, target=2900, implied=11.25),  # newer: wins
        flops_line("pretrain_step", 2.329)])  # no target: not in at_target
    flops = bench("flops")
    assert printed(capsys, flops, ["--table", path, "--only", "per_image"]) == (
        "| Model (config, crop) | G params | D params | G forward | D forward | pretrain step "
        "| GAN step | D pretraining step |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        "| ResNet-18 U-Net + PatchGAN-32 (demo.py, 96) | 11.6 M | 0.695 M | 0.7773 | | 2.329 "
        "| 3.878 | |")
    assert printed(capsys, flops, ["--table", path, "--only", "at_target"]).splitlines()[2:] == [
        "| GAN step (fused), demo.py (96) | 3.878 | 2,900 | 11.2 | 1 % |"]


def step_line(kind, batch, value, **fields):
    return line(f"train_step/{kind}", value, batch=batch, resolution=96,
                compile_s=fields.pop("compile_s", 9.6), achieved_tflops=0.05, **fields)


def test_train_step_tables_quote_the_quiet_default_runs_and_the_flag_sweep(bench, tmp_path,
                                                                            capsys):
    path = write(tmp_path, "train_step", [
        step_line("pretrain", 8, 21.5, compile_s=9.44),
        step_line("pretrain", 16, 23.8),
        step_line("pretrain", 16, 9.0, load_avg_1m=8.0),  # beside a test suite: left out
        step_line("gan", 16, 17.9, compile_s=11.2),
        step_line("pretrain", 16, 22.0),  # newest default at batch 16
        step_line("pretrain", 16, 17.6, xla_flags="--xla_cpu_use_onednn=true"),
        step_line("pretrain", 8, 30.0, xla_flags="--xla_cpu_use_onednn=true"),  # older sweep
        step_line("pretrain", 16, 16.5, xla_flags="--xla_cpu_use_xnnpack=true")])
    train_step = bench("train_step")
    assert printed(capsys, train_step, ["--table", path, "--only", "cpu"]) == (
        "| Config (crop) | Step | Batch 8 | Batch 16 | compile s | achieved GFLOP/s |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        "| demo.py, ResNet-18 (96) | L1 pretraining | 21.5 | **22** | 9.4-9.6 | 50 |\n"
        "| demo.py, ResNet-18 (96) | GAN, fused | | 17.9 | 11.2 | 50 |")
    assert printed(capsys, train_step, ["--table", path, "--only", "xla_flags"]) == (
        "| XLA_FLAGS (demo.py pretrain step, crop 96, batch 16) | images/s | vs default |\n"
        "| --- | --- | --- |\n"
        "| (default) | 22 | 1.00 |\n"
        "| `--xla_cpu_use_onednn=true` | 17.6 | 0.80 |\n"
        "| `--xla_cpu_use_xnnpack=true` | 16.5 | 0.75 |")


def test_input_pipeline_table_rows_by_crop_and_batch(bench, tmp_path, capsys):
    def pipeline(crop, batch, value, stored, **fields):
        return line("input_pipeline", value, batch=batch, resolution=crop, baseline=2 * value,
                    ratio=0.5, config={"stored_size": [stored, stored], "workers": 0},
                    **fields)

    path = write(tmp_path, "input_pipeline", [
        pipeline(224, 64, 50000.4, 224), pipeline(96, 8, 19591.9, 112),
        pipeline(224, 64, 53706.4, 224), pipeline(224, 64, 9.0, 224, load_avg_1m=None)])
    assert printed(capsys, bench("input_pipeline"), ["--table", path]) == (
        "| Records (crop, batch) | Grain pipeline images/s | raw memmap read limit | ratio |\n"
        "| --- | --- | --- | --- |\n"
        "| 112 px (96, 8) | 19,592 | 39,184 | 0.50 |\n"
        "| 224 px (224, 64) | 53,706 | 107,413 | 0.50 |")


def test_cpu_conv_table_marks_the_slowest_side(bench, tmp_path, capsys):
    path = write(tmp_path, "cpu_conv", [
        line("cpu_conv/3x3_forward", ms, batch=16, resolution=side, config={"channels": 512})
        for side, ms in ((1, 5.62), (2, 189.6), (4, 8.61))])
    assert printed(capsys, bench("cpu_conv"), ["--table", path]) == (
        "| input side | 1 | 2 | 4 |\n| --- | --- | --- | --- |\n"
        "| ms (batch 16, 512 -> 512 channels, 3x3) | 5.6 | **189.6** | 8.6 |")


def infer_line(figure, backend, value, **config):
    return line(f"inference/{figure}", value, batch=8, resolution=224,
                config={"backbone": "resnet101", "backend": backend, **config})


def test_inference_cpu_table_joins_the_pytorch_yardstick(bench, tmp_path, capsys):
    path = write(tmp_path, "inference", [
        infer_line("model_host", "jax", 4.48), infer_line("model_device", "jax", 4.38),
        infer_line("model_host", "jax", 3.75),  # newest: wins
        infer_line("model_host", "onnx", 7.79),
        infer_line("end_to_end", "onnx", 4.28, format="png", compose="host"),
        infer_line("end_to_end", "onnx", 9.99, format="jpg", compose="host"),  # not PNG
        infer_line("end_to_end", "jax", 9.99, format="png", compose="device"),  # not host
        {**infer_line("model_host", "jax", 4.2), "xla_flags": "--xla_cpu_use_onednn=true"}])
    write(tmp_path, "torch_reference", [
        line("torch_reference/model_host", 7.27, batch=8, resolution=224,
             config={"backbone": "resnet101"})])
    assert printed(capsys, bench("inference"), ["--table", path, "--only", "cpu"]) == (
        "| G, render, batch | JAX model | JAX G, device batch | ONNX Runtime model | "
        "PyTorch model (yardstick) | JAX end to end | ONNX end to end |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
        "| ResNet-101, 224, 8 | 3.75 | 4.38 | 7.79 | 7.27 | | 4.28 |\n"
        "| ResNet-101, 224, 8, XLA_FLAGS=--xla_cpu_use_onednn=true | 4.2 | | | | | |")


def test_inference_stages_table_shows_each_stage_and_host_only_stages_as_dashes(
        bench, tmp_path, capsys):
    stages = {"decode": 1.4, "render": 3.8, "h2d": None, "g": 203.2, "compose": 96.0,
              "d2h": None, "encode_write": 27.0}
    path = write(tmp_path, "inference", [
        {**infer_line("stages", "jax", 331.4, format="png", compose="host"), "stage_ms": stages,
         "end_to_end_images_per_s": 2.49}])
    table = printed(capsys, bench("inference"), ["--table", path, "--only", "stages"])
    label = "JAX, host compose, PNG, render 224, batch 8 (cpu)"
    assert table.splitlines()[2:] == [f"| {label} | 1.4 | 3.8 | - | 203 | 96 | - | 27 | 2.49 |"]


def test_video_tables_group_clips_by_checkpoint(bench, tmp_path, capsys):
    checkpoint = {"checkpoint": "/runs/demo", "step": 360, "render_size": 96}
    where = {"clip": "vtest.avi", "size": "768x576", "frames": 150, "strength": 0.8, "cuts": 0}

    def video(figure, method, value, **extra):
        return line(f"video/{figure}", value, method=method, **where, **extra,
                    config=checkpoint)

    lines = [video(f, m, v) for f, m, v in (
        ("warp_error", "ground_truth", 1.25), ("warp_error", "frame_by_frame", 2.05),
        ("warp_error", "temporal", 0.46), ("psnr", "frame_by_frame", 19.12),
        ("psnr", "temporal", 19.13), ("colorfulness", "ground_truth", 39.9),
        ("colorfulness", "frame_by_frame", 45.04), ("colorfulness", "temporal", 44.98))]
    lines.append(video("flicker_ratio", None, 0.2244, ratio_all=0.23))
    lines.append(line("video/end_to_end", 28.5, batch=8, resolution=96, size="640x480",
                      frames=48, backend="onnx", cpu_share=0.8, config=checkpoint))
    path = write(tmp_path, "video", lines)
    flicker = printed(capsys, bench("video"), ["--table", path, "--only", "flicker"])
    row = ("| vtest.avi (768x576, 150 frames, strength 0.8) | 1.25 | 2.05 | 0.46 | **0.22** "
           "(0.23) | 19.12 / 19.13 | 45.04 / 44.98 (39.90) | |")
    assert flicker.splitlines()[2:] == [
        "| */runs/demo (step 360, render size 96)* | | | | | | | |", row]
    throughput = printed(capsys, bench("video"), ["--table", path, "--only", "throughput"])
    run = "/runs/demo (step 360, render size 96), onnx, batch 8, 48 frames (cpu)"
    assert throughput.splitlines()[2:] == [f"| 640x480 | {run} | 28.5 | 0.80 |"]


@pytest.mark.parametrize("name", ["cpu_conv", "end_to_end", "flops", "hints", "host_workers",
                                  "inference", "input_pipeline", "quality", "serve",
                                  "train_step", "video"])
def test_every_script_prints_its_help(bench, capsys, name):
    # A '%' in a table's rule once broke argparse's help of the whole script.
    with pytest.raises(SystemExit) as exit_:
        bench(name).main(["--help"])
    assert exit_.value.code == 0 and "--out" in capsys.readouterr().out
