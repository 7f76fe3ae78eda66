"""The quality benchmark's pure parts: the variants of quality.py, the FLOP budget -> steps,
the three splits by photo, the mixture, and the tables.

(The whole benchmark trains for minutes per variant; it is run by hand, BENCHMARKS.md.)
"""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUALITY = REPO / "experiments" / "configs" / "quality.py"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(REPO))
    from benchmarks import quality, quality_budget

    yield quality, quality_budget
    mp.undo()


def _config(variant):
    from jaxcolor import configs

    return configs.load(f"{QUALITY}:{variant}")


def test_variants_are_tokens_that_switch_one_thing_each():
    base = _config("gan")
    assert not base.loss.rebalance and base.loss.lambda_cf == 0 and base.best_metric == "l1"
    assert base.quality.gan_share == 0.4 and base.quality.stage_shares == ()
    both = _config("cf_gan_rebal")  # any order
    assert both.loss.rebalance and both.loss.lambda_cf > 0
    assert both.quality.variant == "cf_gan_rebal"
    l1 = _config("l1_prog_pick")
    assert l1.quality.gan_share == 0 and l1.quality.d_pretrain_share == 0
    assert l1.quality.stage_shares == ((96, 0.5), (128, 0.5)) and l1.best_metric == "combined"
    gpu = _config("gpu_gan_prog")
    assert gpu.model.backbone == "resnet101" and gpu.data.crop_size == 224
    assert gpu.batch_size == 64
    assert [crop for crop, _ in gpu.quality.stage_shares] == [96, 160, 224]
    assert _config("").quality.variant  # the shipped recipe has a name
    tuned = _config("gan_cf0.3_rebal0.8")
    assert tuned.loss.lambda_cf == 0.3 and tuned.loss.rebalance_mix == 0.8
    assert tuned.quality.variant == "gan_cf0.3_rebal0.8" and tuned.quality.gan_share == 0.4
    assert _config("gan0.1_cf0.3").quality.gan_share == 0.1
    assert _config("gan_ema").g.ema_decay == 0.99 and _config("gan_ema0.995").g.ema_decay == 0.995
    assert _config("gan").model.backbone == "resnet18" and not _config("gan").quality.imagenet
    mobile = _config("l1_mnv2_cap1000_t90")
    assert mobile.model.backbone == "mobilenet_v2" and mobile.quality.imagenet
    assert mobile.quality.cap == 1000 and mobile.quality.tflop == 90.0
    assert _config("gan").quality.cap == 0
    assert _config("l1_effl0_hints").model.hints and not _config("l1_effl0").model.hints
    scratch = _config("l1_effl0_scratch")
    assert scratch.model.backbone == "efficientnet_lite0" and not scratch.quality.imagenet
    assert _config("l1_bins_effl0").model.colour_head == "bins"
    assert _config("l1_effl0").model.colour_head == "regression"


@pytest.mark.parametrize("variant", ["gan_l1", "gan_gan", "gan_fancy", "rebal", "gan_cfx",
                                     "gan_cf_cf0.5", "gan_pick1", "l1_mnv2_effl0", "l1_cap",
                                     "l1_t"])
def test_a_bad_variant_is_one_usage_error(variant):
    from jaxcolor.errors import UsageError

    with pytest.raises(UsageError, match="bad variant"):
        _config(variant)


GFLOP = {("pretrain", 96): 2.0, ("pretrain", 128): 4.0, ("d_pretrain", 128): 3.0,
         ("gan", 128): 7.0}


def _table(kind, crop):
    return GFLOP[(kind, crop)] * 1e9


def test_the_budget_buys_steps_by_each_steps_own_flops(bench):
    _, quality_budget = bench
    config = _config("gan")
    config.quality.tflop = 1.0
    plan = quality_budget.plan(config, _table)
    # 59% of 1 TFLOP in pretraining at 4 GFLOP x batch 8, 1% in D at 3, 40% in the GAN at 7.
    assert plan.pretrain_stages == ((128, round(0.59e12 / 32e9)),)
    assert plan.d_pretrain_steps == round(0.01e12 / 24e9)
    assert plan.gan_steps == round(0.4e12 / 56e9)
    assert plan.tflop == pytest.approx(1.0, rel=0.05)  # step counts are rounded
    plan.apply(config)
    assert config.phases.pretrain_steps == 18 and config.phases.pretrain_stages == ()


def test_progressive_pretraining_spends_the_same_flops_on_more_images(bench):
    _, quality_budget = bench
    fixed, prog = _config("l1"), _config("l1_prog")
    for config in (fixed, prog):
        config.quality.tflop = 2.0
    a, b = quality_budget.plan(fixed, _table), quality_budget.plan(prog, _table)
    assert a.tflop == pytest.approx(b.tflop, rel=0.01)
    # Half of 2 TFLOP at 2 GFLOP x 8 images a step, half at 4 x 8; all at 4 x 8 when fixed.
    assert a.pretrain_stages == ((128, round(2e12 / 32e9)),)
    assert b.pretrain_stages == ((96, round(1e12 / 16e9)), (128, round(1e12 / 32e9)))
    assert b.pretrain_steps > a.pretrain_steps  # 93 steps vs 62 for the same FLOPs
    b.apply(prog)
    assert prog.phases.pretrain_stages == b.pretrain_stages
    assert prog.phases.pretrain_steps == b.pretrain_steps


def test_shares_that_leave_nothing_for_pretraining_are_refused(bench):
    _, quality_budget = bench
    config = _config("gan")
    config.quality.gan_share = 1.0
    with pytest.raises(ValueError, match="leave some FLOPs"):
        quality_budget.plan(config, _table)
    config = _config("l1_prog")
    config.quality.stage_shares = ((96, 0.5), (96, 0.5))
    with pytest.raises(ValueError, match="last stage be data.crop_size=128"):
        quality_budget.plan(config, _table)


def _photos(tmp_path, names):
    from PIL import Image

    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name)


def test_the_split_is_by_photo_and_group_and_independent_of_the_listing(tmp_path):
    from benchmarks import quality_data

    names = ([f"pool/bsds/photo{i:03d}.png" for i in range(80)]
             + [f"pool/camvid/CamVid_train_Seq{s}_{f:05d}.png" for s in range(8)
                for f in range(10)]
             + [f"pool/clothing/c{i:03d}.png" for i in range(200)])
    _photos(tmp_path, names)
    photos = quality_data.pool([tmp_path / "pool"])
    assert quality_data.describe(photos) == {"bsds": 80, "camvid": 80, "clothing": 200}
    train, val = quality_data.split(photos, fraction=0.3, per_source=20)
    keys = lambda ps: {p.key for p in ps}  # noqa: E731
    assert not keys(train) & keys(val) and 0 < len(val) and len(train) + len(val) <= 360
    counts = quality_data.describe(val)
    assert max(counts.values()) <= 20 and counts.get("bsds", 0) > 5  # no source dominates
    # A CamVid sequence validates whole or trains whole: no neighbouring frame on both sides.
    assert not {p.group for p in train} & {p.group for p in val}
    # Another photo in the pool moves nothing already split.
    _photos(tmp_path, ["pool/bsds/new.png"])
    train2, val2 = quality_data.split(quality_data.pool([tmp_path / "pool"]), fraction=0.3,
                                      per_source=20)
    assert keys(train) <= keys(train2) and keys(val) <= keys(val2) | {"pool/bsds/new.png"}


def test_the_imagenet_like_pool_validates_whole_classes(tmp_path):
    from benchmarks import quality_data

    _photos(tmp_path, [f"pool/imagen/n{c:08d}_{i}_thing.jpg" for c in range(40)
                       for i in range(5)])
    train, val = quality_data.split(quality_data.pool([tmp_path / "pool"]), fraction=0.3,
                                    per_source=1000)
    classes = lambda ps: {p.path.name.split("_")[0] for p in ps}  # noqa: E731
    assert val and not classes(train) & classes(val)
    assert all(sum(p.path.name.startswith(c) for p in val) == 5 for c in classes(val))


def test_a_named_pool_has_its_own_records_and_val_sources_choose_what_is_measured(
        bench, tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from benchmarks import quality_data

    quality, _ = bench
    _photos(tmp_path, [f"pool/bsds/{i}.png" for i in range(40)]
            + [f"pool/imagen/n{c:08d}_{i}_thing.jpg" for c in range(20) for i in range(5)])
    (tmp_path / "test").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)).save(
        tmp_path / "test" / "t.png")
    monkeypatch.setattr(quality_data, "ingest", lambda photos, out, **kw: out)
    base = ["--photos", str(tmp_path / "pool"), "--test_photos", str(tmp_path / "test"),
            "--workdir", str(tmp_path / "work"), "--val_fraction", "0.3"]
    config = _config("l1")
    data = quality.prepare_data(quality._parse(base), config)
    assert (data["train_records"].name, data["val_records"].name) == ("train-144", "val-144")
    sources = {p.parent.name for p in data["val_photos"]}
    assert sources == {"bsds", "imagen"}
    data = quality.prepare_data(
        quality._parse(base + ["--pool_name", "im", "--val_sources", "imagen"]), config)
    assert (data["train_records"].name, data["val_records"].name) == ("train-144+im",
                                                                     "val-144+im")
    assert data["val_photos"] and {p.parent.name for p in data["val_photos"]} == {"imagen"}
    with pytest.raises(SystemExit, match="--val_sources clothing: no validation photo"):
        quality.prepare_data(quality._parse(base + ["--val_sources", "clothing"]), config)


def test_a_starter_file_is_measured_as_its_run_and_reported_where_named(bench, tmp_path,
                                                                        tmp_path_factory):
    """`--against` takes the shipped starter's format (the baseline whose run directory is
    gone): a float32 starter file measures exactly as the run it was written from, and its
    report goes where the caller says, never beside the file (the shipped one is package
    data)."""
    from PIL import Image

    from jaxcolor.inference import restore, starter
    from tests.support import photo_rgb, trained_workdir

    quality, _ = bench
    workdir = trained_workdir(tmp_path_factory)
    path = starter.save(restore.restore(workdir), tmp_path / "s.npz", dtype="float32")
    photos = []
    for i in range(2):
        photos.append(tmp_path / "photos" / f"{i}.png")
        photos[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(photo_rgb(48, 64, seed=i)).save(photos[-1])
    with pytest.raises(ValueError, match="s.npz: a model file has no run directory"):
        quality.measure(path, None, photos, "validation:x", 1.5)
    theirs = quality.measure(path, None, photos, "validation:x", 1.5, tmp_path / "reports")
    run = quality.measure(workdir, None, photos, "validation:x", 1.5)
    assert theirs["chroma"] == 1.5 and theirs["photos"] == 2
    assert theirs["report"] == str(tmp_path / "reports" / f"eval-validation-x-{run['step']}"
                                   "-chroma1.5" / "metrics.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "reports", "s.npz"]
    assert {k: theirs[k] for k in quality.METRICS} == {k: run[k] for k in quality.METRICS}


def test_model_files_of_one_name_get_their_own_reports(bench, tmp_path):
    quality, _ = bench
    a = quality.model_reports(tmp_path / "w", tmp_path / "a" / "starter.npz")
    b = quality.model_reports(tmp_path / "w", tmp_path / "b" / "starter.npz")
    assert a.parent == b.parent == tmp_path / "w" / "models"
    assert a.name.startswith("starter-") and b.name.startswith("starter-") and a != b
    assert a == quality.model_reports(tmp_path / "w", tmp_path / "a" / "x" / ".." / "starter.npz")


def test_the_calibrated_chroma_is_the_most_colour_that_keeps_the_gain_over_gray(bench):
    quality, _ = bench

    def at(chroma, psnr, delta_cf):
        return {"chroma": chroma, "psnr": psnr, "delta_cf": delta_cf, "gray": {"psnr": 22.0}}

    sweep = [at(1.0, 23.0, 20.0), at(1.5, 22.4, 14.0), at(1.75, 22.0, 11.0),
             at(2.0, 21.9, 8.0)]
    assert quality.calibrated(sweep)["chroma"] == 1.75  # a gain of exactly 0 still keeps it
    assert quality.calibrated(sweep[::-1])["chroma"] == 1.75
    losing = [at(1.0, 21.5, 20.0), at(1.5, 21.8, 14.0), at(2.0, 21.0, 8.0)]
    assert quality.calibrated(losing)["chroma"] == 1.5  # none keeps it: the largest gain


def test_a_model_spec_names_a_run_its_step_and_its_chroma(bench):
    quality, _ = bench
    assert quality.model_spec("/r/run") == (Path("/r/run"), None, None)
    assert quality.model_spec("/r/run:3650@1.95") == (Path("/r/run"), 3650, 1.95)
    assert quality.model_spec("/r/s.npz@2") == (Path("/r/s.npz"), None, 2.0)


def test_the_matched_chroma_is_the_scale_nearest_the_other_models_psnr(bench):
    quality, _ = bench
    sweep = [{"chroma": c, "psnr": p} for c, p in ((1.0, 23.0), (1.5, 22.4), (2.0, 21.9))]
    assert quality.matched(sweep, 22.3)["chroma"] == 1.5
    assert quality.matched(sweep, 21.0)["chroma"] == 2.0  # beyond the sweep: its end
    assert quality.matched(sweep[::-1], 22.8)["chroma"] == 1.0


def test_the_mixture_caps_each_source_and_drops_copies_of_test_photos(tmp_path):
    import numpy as np
    from PIL import Image

    from benchmarks import quality_data

    _photos(tmp_path, [f"pool/big/{i}.png" for i in range(30)]
            + [f"pool/small/{i}.png" for i in range(5)])
    photos = quality_data.pool([tmp_path / "pool"])
    assert quality_data.describe(quality_data.capped(photos, 10)) == {"big": 10, "small": 5}
    assert quality_data.capped(photos, 0) == sorted(photos, key=lambda p: p.key)
    rng = np.random.default_rng(0)
    test = tmp_path / "test.png"
    pixels = rng.integers(0, 256, (64, 48, 3), np.uint8)
    Image.fromarray(pixels).save(test)
    Image.fromarray(pixels).resize((96, 128)).save(tmp_path / "pool" / "small" / "copy.jpg")
    photos = quality_data.pool([tmp_path / "pool"])
    kept, dropped = quality_data.without_test_copies(photos, [test])
    assert [p.key for p in dropped] == ["pool/small/copy.jpg"] and len(kept) == 35


def test_an_interrupted_training_stops_the_benchmark_and_keeps_its_time(bench, tmp_path,
                                                                          monkeypatch):
    """A SIGTERM makes the loop save and return early: the benchmark must stop there (before
    measuring the unfinished run as the variant's result), keeping the wall time trained so
    far for the rerun that resumes it."""
    from jaxcolor.train import loop

    quality, _ = bench
    config = _config("gan")
    config.compilation_cache = ""
    monkeypatch.setattr(loop, "train_and_evaluate", lambda config, workdir: None)
    with pytest.raises(SystemExit, match="stopped before its last step"):
        quality.train(config, tmp_path)
    assert (tmp_path / "train_timing.json").is_file()


def test_the_default_variant_is_gan_py_with_cpu_sizes():
    """quality.py's default variant switches on exactly what gan.py ships."""
    from jaxcolor import configs

    shipped, gan = _config(""), configs.load(str(QUALITY.parent / "gan.py"))
    assert shipped.loss.to_dict() == gan.loss.to_dict()
    assert shipped.best_metric == gan.best_metric
    assert shipped.g.ema_decay == gan.g.ema_decay
    assert (shipped.quality.gan_share > 0) == (gan.phases.gan_steps > 0)
    # The GAN phase's share of the FLOPs, from gan.py's steps and its steps' costs per image
    # (BENCHMARKS.md, benchmarks.flops: 92.1 GFLOP a GAN step, 59.7 a pretraining step).
    p = gan.phases
    gan_flops = p.gan_steps * 92.1
    assert gan_flops / (gan_flops + p.pretrain_steps * 59.7) == pytest.approx(
        shipped.quality.gan_share, abs=0.02)
    assert bool(shipped.quality.stage_shares) == bool(gan.phases.pretrain_stages)


def test_tables_per_split_with_intervals_and_contact_sheets(bench, tmp_path, capsys):
    import json

    from PIL import Image

    quality, _ = bench
    m = dict(psnr=22.5, ssim=0.9, ab_mae=10.0, ab_auc=0.88, cf=20.0, cf_true=35.0,
             delta_cf=15.0)
    sheet = tmp_path / "runs" / "gan" / "eval-validation-50" / "contact_sheet.png"
    sheet.parent.mkdir(parents=True)
    Image.new("RGB", (40, 60), (200, 10, 10)).save(sheet)
    line = {"figure": "quality/gan", "split": "validation", "value": 15.0, "chosen_by": "l1",
            "step": 50, **m, "gray": {**m, "psnr": 22.0, "cf": 0.0, "delta_cf": 35.0},
            "intervals": {"psnr_gain": [0.5, 0.2, 0.8], "delta_cf": [15.0, 13.1, 16.9]},
            "final": {"step": 60, **m}, "picks": {"combined": {"step": 40, **m}},
            "photos": {"report": str(sheet.with_name("metrics.json"))}}
    test_line = {**{k: v for k, v in line.items() if k not in ("final", "picks")},
                 "split": "test", "step": 50, "against": {
        "run": "/runs/old", "difference": {"photos": 900, "psnr_diff": [0.3, 0.1, 0.5],
                                           "delta_cf_diff": [-4.0, -5.0, -3.0]}}}
    swept = {**line, "figure": "quality/l1", "calibrated_chroma": 1.5,
             "chroma_sweep": [{**m, "step": 50, "chroma": c} for c in (1.25, 1.5)],
             "against": [{"run": "S@2", **m, "difference": {
                 "photos": 90, "psnr_diff": [0.2, -0.1, 0.4],
                 "delta_cf_diff": [-0.7, -2.0, 0.7]}}]}
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join(json.dumps(x) for x in ({**line, "step": 10}, line,
                                                          test_line, swept)) + "\n")
    quality.main(["--table", str(results), "--sheets", str(tmp_path / "docs")])
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| gray image |") and len(rows) == 13  # the newest line only
    assert "picked by l1 (step 50) | 22.50 | +0.50 [+0.20, +0.80] |" in rows[3]
    assert rows[3].endswith("| 15.0 [13.1, 16.9] |") and "(step 40)" in rows[5]
    assert "step 50, chroma x1.25 |" in rows[9] and "chroma x1.5 (calibrated) |" in rows[10]
    assert rows[12].startswith("| l1 at chroma x1.5 minus S@2 | paired, 90 photos | +0.20 ")
    with Image.open(tmp_path / "docs" / "gan-validation.jpg") as im:
        assert im.size == (20, 30)
    quality.main(["--table", str(results), "--split", "test"])
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 5 and "minus /runs/old" in rows[4] and "-4.0 [-5.0, -3.0]" in rows[4]
