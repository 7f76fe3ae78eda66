"""Every benchmark's main runs at tiny sizes and writes complete JSON lines, so none rots.

One tiny model throughout (ResNet-18 encoder, 16-wide decoder, 8-wide PatchGAN, 32x32,
batch 2) and a persistent compilation cache for the module: the pretraining step is the
same XLA program in `train_step`, `flops` and `end_to_end`, so it compiles once.
"""

import json
from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

REPO = Path(__file__).resolve().parents[2]
SIZE, BATCH = 32, 2
TINY = ["--set", "model.backbone=resnet18", "--set", "model.decoder_widths=16,16,16,16,16",
        "--set", "model.d_width=8"]
ENV_FIELDS = ("figure", "value", "unit", "config", "batch", "resolution", "jax", "jaxlib",
              "device_kind", "device_count")


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory):
    """The `benchmarks` package (a directory at the repo root) with a module-wide XLA cache."""
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(REPO))
    previous = jax.config.jax_compilation_cache_dir
    compilation_cache.set_cache_dir(str(tmp_path_factory.mktemp("bench_xla_cache")))
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_compilation_cache_dir", previous)
    compilation_cache.reset_cache()
    mp.undo()


def emitted(capsys, out: Path, results: list[dict]) -> None:
    """The results were printed, one JSON line each, and appended to `out` identically."""
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()
               if line.startswith("{")]
    assert printed == results
    assert [json.loads(line) for line in out.read_text().splitlines()] == results
    for r in results:
        for field in ENV_FIELDS:
            assert field in r, field
        assert r["device_count"] == jax.device_count()


def test_peak_flops_table_matches_device_kinds_and_refuses_guesses(bench_env):
    from benchmarks import common

    assert common.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert common.peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12  # longest match wins
    assert common.peak_flops("TPU v5 lite", "bfloat16") == 197e12
    assert common.peak_flops("cpu", "bfloat16") is None
    assert common.peak_flops("NVIDIA H100 80GB HBM3", "float32") is None


def test_config_overrides_parse_values_and_name_unknown_fields(bench_env):
    from benchmarks import common

    config = common.load_config(common.GAN_CONFIG + ":pretrain")
    assert config.phases.gan_steps == 0
    common.apply_overrides(config, ["model.backbone=resnet18", "model.decoder_widths=8,8,8,8,8",
                                    "model.compute_dtype=bfloat16"])
    assert config.model.backbone == "resnet18" and tuple(config.model.decoder_widths) == (8,) * 5
    assert config.model.compute_dtype == "bfloat16"
    with pytest.raises(common.BenchmarkArgumentError, match="model.depht"):
        common.apply_overrides(config, ["model.depht=18"])


@pytest.mark.slow
def test_train_step_reports_throughput_compile_time_and_flops(bench_env, tmp_path, capsys):
    from benchmarks import train_step

    out = tmp_path / "results.jsonl"
    results = train_step.main([
        "--config", "experiments/configs/demo.py", *TINY, "--size", str(SIZE),
        "--batch", str(BATCH), "--kinds", "pretrain", "--windows", "1",
        "--steps_per_window", "1", "--warmup", "1", "--out", str(out)])
    emitted(capsys, out, results)
    (r,) = results
    assert r["figure"] == "train_step/pretrain" and r["unit"] == "images/s"
    assert (r["batch"], r["resolution"]) == (BATCH, SIZE)
    assert r["value"] > 0 and len(r["windows"]) == 1
    assert r["compile_s"] > 0 and r["gflops_per_image"] > 0
    assert r["step_ms"] == pytest.approx(1000 * BATCH / r["value"], rel=0.01)
    assert r["mfu"] is None  # no known peak for a CPU
    assert r["flops_source"] == "xla_cost_analysis_of_the_cpu_lowering"
    assert r["config"]["backbone"] == "resnet18" and r["config"]["kind"] == "pretrain"


def test_flops_of_the_cpu_lowering_are_the_compiled_programs_flops(bench_env):
    """The platform-independent count (the program as written, before backend passes) is
    what XLA:CPU's compiled program does, less what its fusions recompute (elementwise work,
    a few percent at this tiny size); on a GPU the compiled count misses cuDNN's convolutions."""
    from benchmarks import common

    config = common.load_config(common.DEMO_CONFIG)
    common.apply_overrides(config, TINY[1::2])
    run = common.cpu_setup(config)
    batch = common.synthetic_batch(BATCH, SIZE, run.batch_sharding, abstract=True)
    step = run.steps.for_phase("pretrain")
    compiled = step.lower(run.abstract_state, batch).compile().cost_analysis()["flops"]
    assert 0.9 < common.lowered_flops(step, run.abstract_state, batch) / compiled <= 1.0


@pytest.mark.slow
def test_flops_counts_forward_passes_and_the_step(bench_env, tmp_path, capsys):
    from benchmarks import flops

    out = tmp_path / "results.jsonl"
    results = flops.main(["--config", "experiments/configs/demo.py", *TINY, "--size",
                          str(SIZE), "--batch", str(BATCH), "--steps", "pretrain",
                          "--target", "100", "--out", str(out)])
    emitted(capsys, out, results)
    by_figure = {r["figure"]: r for r in results}
    assert set(by_figure) == {"flops/g_forward", "flops/d_forward", "flops/pretrain_step"}
    g, d, step = (by_figure[f]["value"] for f in
                  ("flops/g_forward", "flops/d_forward", "flops/pretrain_step"))
    assert g > d > 0
    assert step > 2 * g  # a training step adds a backward pass (~2x the forward)
    assert by_figure["flops/g_forward"]["implied_tflops"] == pytest.approx(g * 100 / 1e3,
                                                                           rel=0.01)
    assert all(r["unit"] == "GFLOP/image" and r["g_params"] > r["d_params"] > 0
               for r in results)


@pytest.fixture(scope="module")
def tiny_run(bench_env, tmp_path_factory):
    """`end_to_end` on 24 synthetic records for 4 steps, its workdir kept for `inference`."""
    from benchmarks import end_to_end

    workdir = tmp_path_factory.mktemp("e2e") / "run"
    out = workdir.parent / "results.jsonl"
    result = end_to_end.main([
        "--synthetic", "24", "--image_size", "40", *TINY, "--set", f"batch_size={BATCH}",
        "--set", f"data.crop_size={SIZE}", "--steps", "4", "--log_every", "2",
        "--workdir", str(workdir), "--out", str(out)])
    return result, workdir, out


@pytest.mark.slow
def test_end_to_end_reports_images_per_second_and_data_wait(tiny_run):
    result, workdir, out = tiny_run
    assert [json.loads(line) for line in out.read_text().splitlines()] == [result]
    for field in ENV_FIELDS:
        assert field in result, field
    assert result["figure"] == "end_to_end/pretrain" and result["unit"] == "images/s"
    assert (result["batch"], result["resolution"]) == (BATCH, SIZE)
    assert result["value"] > 0
    assert 0 <= result["data_wait_fraction"] <= 1
    # The host's own time per step: positive, and a part of the step.
    assert 0 < result["host_ms_per_step"] <= result["step_ms"]
    # 4 steps logged every 2: the first window (compilation) is dropped, one remains.
    assert len(result["windows"]["images_per_sec"]) == 1
    assert (workdir / "checkpoints" / "4").is_dir()


@pytest.mark.slow
def test_inference_reports_file_and_model_throughput(bench_env, tiny_run, tmp_path, capsys):
    from benchmarks import inference

    _, workdir, _ = tiny_run
    capsys.readouterr()
    out = tmp_path / "results.jsonl"
    results = inference.main([
        "--checkpoint", str(workdir), "--synthetic", "3", "--photo_size", "50x40",
        "--render", str(SIZE), "--batch_size", str(BATCH), "--windows", "1",
        "--model_steps", "1", "--formats", "png,jpg", "--compose", "device",
        "--out", str(out)])
    emitted(capsys, out, results)
    assert [(r["figure"], r["config"].get("format")) for r in results] == [
        ("inference/model_device", None), ("inference/model_host", None),
        ("inference/end_to_end", "png"), ("inference/stages", "png"),
        ("inference/end_to_end", "jpg"), ("inference/stages", "jpg"),
        ("inference/evaluate", None)]
    for r in results:
        assert r["value"] > 0 and (r["resolution"], r["batch"]) == (SIZE, BATCH)
        assert r["config"]["step"] == 4 and r["config"]["compose"] == "device"
    assert results[0]["gflops_per_image"] > 0
    stages = results[3]
    assert set(stages["stage_ms"]) == {"decode", "render", "h2d", "g", "compose", "d2h",
                                       "encode_write"}
    assert all(v > 0 for v in stages["stage_ms"].values())
    assert stages["value"] == pytest.approx(sum(stages["stage_ms"].values()), rel=1e-3)
    assert 0 < stages["device_busy_fraction"]
    assert results[-1]["config"]["count"] == 3 and results[-1]["config"]["protocol"] == "paper"


@pytest.mark.slow
def test_inference_compares_backends_on_a_randomly_initialised_config(bench_env, tmp_path,
                                                                     capsys):
    pytest.importorskip("onnxruntime", reason="the ONNX backend needs `jaxcolor[onnx]`")
    from benchmarks import common, inference

    out = tmp_path / "results.jsonl"
    results = inference.main([
        "--config", common.GAN_CONFIG, *TINY, "--synthetic", "2", "--photo_size", "40x30",
        "--render", str(SIZE), "--batch_size", str(BATCH), "--backends", "jax,onnx",
        "--windows", "1", "--model_steps", "1", "--no_evaluate", "--out", str(out)])
    emitted(capsys, out, results)
    assert [(r["figure"], r["config"]["backend"]) for r in results] == [
        ("inference/model_device", "jax"), ("inference/model_host", "jax"),
        ("inference/end_to_end", "jax"), ("inference/stages", "jax"),
        ("inference/model_host", "onnx"), ("inference/end_to_end", "onnx"),
        ("inference/stages", "onnx")]
    onnx_stages = results[-1]["stage_ms"]
    assert onnx_stages["h2d"] is None and onnx_stages["compose"] > 0  # composed on the host
    assert all(r["value"] > 0 and r["config"]["step"] == 0 and r["config"]["backbone"] == "resnet18"
               for r in results)


def test_inference_rejects_an_unknown_backend(bench_env):
    from benchmarks import inference

    with pytest.raises(SystemExit):
        inference.main(["--config", "x.py", "--synthetic", "1", "--backends", "jax,torch"])


def test_torch_reference_rebuilds_the_generator_with_equal_parameters(bench_env, tmp_path):
    """Runs only where torch is installed (never in CI: torch is no dependency of jaxcolor)."""
    pytest.importorskip("torchvision", reason="benchmarks/torch_reference.py needs torch + "
                        "torchvision, which jaxcolor never installs")
    from benchmarks import torch_reference

    (result,) = torch_reference.main(["--render", "64", "--batch", "1", "--steps", "1",
                                      "--windows", "1", "--out", ""])
    assert result["config"]["params"] == torch_reference.JAXCOLOR_G_PARAMS
    assert result["value"] > 0


def test_host_workers_compares_serial_threads_and_processes(bench_env, tmp_path, capsys):
    from benchmarks import host_workers

    out = tmp_path / "results.jsonl"
    results = host_workers.main(["--photos", "4", "--photo_size", "64x48", "--workers", "2",
                                 "--windows", "1", "--out", str(out)])
    emitted(capsys, out, results)
    assert [r["figure"] for r in results] == [
        "host_workers/decode_jpeg", "host_workers/render", "host_workers/compose_numpy",
        "host_workers/encode_png", "host_workers/encode_jpeg"]
    for r in results:
        assert r["value"] > 0 and r["serial"] > 0 and r["processes"] > 0
        assert r["thread_speedup"] == pytest.approx(r["value"] / r["serial"], rel=0.01)
