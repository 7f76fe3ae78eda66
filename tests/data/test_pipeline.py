"""The input pipeline: determinism, coverage, resumption, sharding, filtering, augmentation."""

import os
import subprocess
import sys
import textwrap

import grain
import jax
import numpy as np
import pytest

from jaxcolor import color, sharding
from jaxcolor.data import batches as batches_lib
from jaxcolor.data import pipeline, stats
from jaxcolor.data.records import Records, RecordsWriter

SIZE, CROP, COUNT, VAL_EVERY = 16, 12, 64, 8
GRAY = {i for i in range(COUNT) if i % 4 == 1}  # ab8 == 128: no colour at all (all in train)
FLAT = {3, 7, 11, 15}  # constant L: colourful but no contrast
TRAIN_KEPT = 36  # 56 train records - 16 gray - 4 flat


def _make_records(directory, count=COUNT, val_every=VAL_EVERY):
    rng = np.random.default_rng(0)
    L8 = rng.integers(0, 256, (count, SIZE, SIZE), np.uint8)
    ab8 = rng.integers(0, 256, (count, SIZE, SIZE, 2), np.uint8)
    for i in range(count):
        if i in GRAY:
            ab8[i] = 128
        if i in FLAT:
            L8[i] = 120
    with RecordsWriter(directory, SIZE, SIZE, val_every=val_every) as writer:
        writer.add(L8, ab8)
    return Records(directory)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return _make_records(tmp_path_factory.mktemp("pipeline") / "records")


def _train(records, **kwargs):
    kwargs = {"global_batch": 6, "crop_size": CROP, "seed": 0, "shard_index": 0,
              "shard_count": 1, **kwargs}
    return pipeline.make_train_iterator(records, **kwargs)


def _take(iterator, n):
    return [{k: np.array(v) for k, v in next(iterator).items()} for _ in range(n)]


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _windows(image, record, crop):
    """Every (top, left, flipped) whose window of `record` equals `image`."""
    h, w = record.shape[:2]
    return {(t, l, f) for t in range(h - crop + 1) for l in range(w - crop + 1)
            for f in (False, True)
            if np.array_equal(image, record[t:t + crop, l:l + crop][:, ::-1 if f else 1])}


# --------------------------------------------------------------------------------------
# Order: determinism, coverage, resumption.
# --------------------------------------------------------------------------------------


def test_same_seed_same_batches_and_other_seed_differs(records):
    a = _take(_train(records, seed=3)[0], 8)
    b = _take(_train(records, seed=3)[0], 8)
    c = _take(_train(records, seed=4)[0], 8)
    _assert_same(a, b)
    assert any(not np.array_equal(x["index"], y["index"]) for x, y in zip(a, c))


def test_every_filtered_record_once_per_epoch_and_epochs_reshuffled(records):
    it, info = _train(records)
    assert info.kept == info.shard_records == TRAIN_KEPT and info.batches_per_epoch == 6
    expected = set(stats.select(records.stats, stats.FilterThresholds(),
                                records.split("train"))[0].tolist())
    epochs = [np.concatenate([b["index"] for b in _take(it, 6)]) for _ in range(3)]
    for epoch in epochs:
        assert sorted(epoch.tolist()) == sorted(expected)
    assert not np.array_equal(epochs[0], epochs[1])


def test_batches_run_on_across_epoch_boundaries_without_dropping(records):
    it, _ = _train(records, global_batch=8)  # 36 records: batches straddle epochs
    stream = np.concatenate([b["index"] for b in _take(it, 9)])  # 72 = two epochs
    values, counts = np.unique(stream, return_counts=True)
    assert len(values) == TRAIN_KEPT and set(counts) == {2}


def test_state_round_trip_mid_epoch_resumes_exactly(records):
    it, _ = _train(records)
    _take(it, 4)  # mid-epoch (6 batches per epoch)
    state = it.get_state()
    expected = _take(it, 5)  # runs into the next epoch
    resumed, _ = _train(records)
    resumed.set_state(state)
    _assert_same(_take(resumed, 5), expected)


def test_orbax_checkpoint_manager_saves_and_restores_the_iterator(records, tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    it, _ = _train(records)
    _take(it, 3)
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
    expected = _take(it, 4)
    fresh, _ = _train(records)
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        restored = mngr.restore(3, args=ocp.args.Composite(
            data=grain.checkpoint.CheckpointRestore(fresh)))
    _assert_same(_take(restored["data"], 4), expected)


# --------------------------------------------------------------------------------------
# Multi-host sharding, filtering, validation split.
# --------------------------------------------------------------------------------------


def test_two_processes_read_disjoint_shards_covering_the_filtered_set(records):
    seen = []
    for process in range(2):
        it, info = _train(records, shard_index=process, shard_count=2)
        assert info.local_batch == 3 and info.shard_records == TRAIN_KEPT // 2
        seen.append(set(np.concatenate([b["index"] for b in _take(it, 6)]).tolist()))
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == TRAIN_KEPT


def test_uneven_shards_leave_out_the_remainder_and_say_so(records):
    _, info = _train(records, global_batch=5, shard_index=4, shard_count=5)
    assert (info.shard_records, info.unsharded) == (7, 1)


def test_filter_drops_grayscale_and_flat_records_and_counts_them(records):
    it, info = _train(records)
    assert info.removed == {"min_colorfulness": len(GRAY), "min_l_std": len(FLAT)}
    assert info.split_records == COUNT - COUNT // VAL_EVERY
    read = set(np.concatenate([b["index"] for b in _take(it, 12)]).tolist())
    assert not read & (GRAY | FLAT)
    _, unfiltered = _train(records, thresholds=None)
    assert unfiltered.kept == COUNT - COUNT // VAL_EVERY and unfiltered.removed == {}


def test_eval_reads_the_val_split_once_in_order_with_a_padding_mask(records):
    ds, info = pipeline.make_eval_dataset(records, global_batch=3, crop_size=CROP,
                                          shard_index=0, shard_count=1)
    batches = [{k: np.array(v) for k, v in b.items()} for b in ds]
    assert len(batches) == 3 and info.kept == 8  # 8 val records, padded to 9
    index = np.concatenate([b["index"] for b in batches])
    mask = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(index[mask], records.split("val"))
    assert mask.tolist() == [True] * 8 + [False]
    train = set(np.concatenate([b["index"] for b in _take(_train(records)[0], 6)]).tolist())
    assert not train & set(index.tolist())
    _assert_same(batches, [{k: np.array(v) for k, v in b.items()} for b in ds])  # 2nd pass
    off = (SIZE - CROP) // 2  # centre crop, never flipped
    L, ab = records.read(index[:3])
    np.testing.assert_array_equal(batches[0]["L"], L[:, off:off + CROP, off:off + CROP])
    np.testing.assert_array_equal(batches[0]["ab"], ab[:, off:off + CROP, off:off + CROP])


def test_eval_shards_yield_equal_batch_counts_and_cover_the_split(records):
    parts = [pipeline.make_eval_dataset(records, global_batch=6, crop_size=CROP,
                                        shard_index=p, shard_count=2)[0] for p in range(2)]
    batches = [list(ds) for ds in parts]
    assert len(batches[0]) == len(batches[1]) == 2  # 8 val records padded to 12
    real = [np.concatenate([b["index"][b["mask"]] for b in bs]) for bs in batches]
    assert sorted(np.concatenate(real).tolist()) == records.split("val").tolist()


def test_validation_source_prefers_a_separate_directory(records, tmp_path):
    assert pipeline.validation_source(records) == (records, "val")
    other = _make_records(tmp_path / "val", count=8, val_every=0)
    source, split = pipeline.validation_source(records, str(other.directory))
    assert (source.directory, split) == (other.directory, "all")
    with pytest.raises(pipeline.PipelineError, match="val_every"):
        pipeline.validation_source(other)


# --------------------------------------------------------------------------------------
# Augmentation.
# --------------------------------------------------------------------------------------


def test_crop_windows_cut_the_requested_windows():
    rng = np.random.default_rng(1)
    L = rng.integers(0, 256, (3, 10, 10), np.uint8)
    ab = rng.integers(0, 256, (3, 10, 10, 2), np.uint8)
    top, left = np.array([0, 2, 4]), np.array([4, 1, 0])
    L_out, ab_out = pipeline.crop_windows(L, ab, top, left, 6)
    for i in range(3):
        win = np.s_[i, top[i]:top[i] + 6, left[i]:left[i] + 6]
        np.testing.assert_array_equal(L_out[i], L[win])
        np.testing.assert_array_equal(ab_out[i], ab[win])  # a, b stay in order
    full_L, full_ab = pipeline.crop_windows(L, ab, top * 0, left * 0, 10)
    np.testing.assert_array_equal(full_L, L)
    np.testing.assert_array_equal(full_ab, ab)


def _as_seen_by_the_model(batch):
    """The batch after the device-side flip, back in host arrays (L8, ab8)."""
    from jaxcolor.data import batches

    l_norm, ab_norm = batches.prepare_batch({k: batch[k] for k in ("L", "ab", "flip")})
    lab = np.concatenate([np.asarray(color.denormalize_l(l_norm)),
                          np.asarray(color.denormalize_ab(ab_norm))], -1)
    L8, ab8 = color.encode_lab8(lab)
    return L8, ab8


def test_training_batches_are_random_windows_of_their_records(records):
    batches = _take(_train(records)[0], 6)
    flips, offsets = set(), set()
    for batch in batches:
        assert batch["L"].shape == (6, CROP, CROP) and batch["L"].dtype == np.uint8
        assert batch["ab"].shape == (6, CROP, CROP, 2) and batch["ab"].dtype == np.uint8
        assert batch["flip"].shape == (6,) and batch["flip"].dtype == bool
        seen_L, seen_ab = _as_seen_by_the_model(batch)
        L, ab = records.read(batch["index"])
        for i in range(6):
            found = _windows(seen_L[i], L[i], CROP) & _windows(seen_ab[i], ab[i], CROP)
            assert len(found) == 1, f"record {batch['index'][i]}: no single matching window"
            (top, left, flipped), = found
            assert flipped == bool(batch["flip"][i])
            flips.add(flipped)
            offsets.add((top, left))
    assert flips == {False, True} and len(offsets) > 5


def test_flip_off_never_mirrors(records):
    for batch in _take(_train(records, flip=False)[0], 3):
        assert not batch["flip"].any()
        L, _ = records.read(batch["index"])
        for i in range(6):
            assert {f for _, _, f in _windows(batch["L"][i], L[i], CROP)} == {False}


# --------------------------------------------------------------------------------------
# Resolution schedule (progressive training).
# --------------------------------------------------------------------------------------

STAGES = (pipeline.Stage(0, 8, 4), pipeline.Stage(3, 12, 6))  # 3 steps of 4 at 8 px, then 6 at 12


def _staged(records, **kwargs):
    return _train(records, stages=STAGES, **kwargs)


def test_stages_crop_and_batch_per_step_and_the_stream_runs_on(records):
    it, info = _staged(records)
    assert info.stages == STAGES
    batches = _take(it, 6)
    assert [b["L"].shape for b in batches] == [(4, 8, 8)] * 3 + [(6, CROP, CROP)] * 3
    assert [b["ab"].shape[1:] for b in batches] == [(8, 8, 2)] * 3 + [(CROP, CROP, 2)] * 3
    # 12 + 18 = 30 records: less than an epoch of 36, so each appears at most once.
    stream = np.concatenate([b["index"] for b in batches])
    assert len(set(stream.tolist())) == 30
    # The last stage's batches are CROP windows of their records; an earlier stage's, whole
    # CROP windows downscaled to its size (DeOldify's progressive resizing), not 8 px windows.
    L, ab = records.read(batches[4]["index"])
    assert all(_windows(batches[4]["L"][i], L[i], CROP) for i in range(6))
    L, ab = records.read(batches[0]["index"])
    for i in range(4):  # (the flip is the device's: host arrays are never mirrored)
        shrunk = [batches_lib.downscale(L[i:i + 1, t:t + CROP, l:l + CROP],
                                        ab[i:i + 1, t:t + CROP, l:l + CROP], 8)
                  for t in range(SIZE - CROP + 1) for l in range(SIZE - CROP + 1)]
        assert any(np.array_equal(batches[0]["L"][i], s_L[0])
                   and np.array_equal(batches[0]["ab"][i], s_ab[0]) for s_L, s_ab in shrunk), i
        assert not _windows(batches[0]["L"][i], L[i], 8)  # not a plain 8 px window


def test_after_the_stages_batches_are_the_unstaged_pipelines_from_that_stream_position(records):
    """Stage 1 reads the first 12 stream positions; the last stage then continues at 12,
    i.e. where an unstaged pipeline of batch 6 is at its step 2."""
    staged = _take(_staged(records)[0], 5)[3:]
    plain = _take(_train(records)[0], 4)[2:]
    for s, p in zip(staged, plain):
        np.testing.assert_array_equal(s["index"], p["index"])


@pytest.mark.parametrize("taken", [2, 3, 4])  # inside stage 1, at the boundary, in stage 2
def test_a_staged_stream_resumes_exactly_in_any_stage(records, taken):
    it, _ = _staged(records)
    _take(it, taken)
    state = it.get_state()
    expected = _take(it, 3)
    resumed, _ = _staged(records)
    resumed.set_state(state)
    _assert_same(_take(resumed, 3), expected)


@pytest.mark.parametrize("stages, match", [
    ((pipeline.Stage(1, 8, 4), pipeline.Stage(3, CROP, 6)), "start at 0"),
    ((pipeline.Stage(0, 8, 4), pipeline.Stage(0, CROP, 6)), "increase"),
    ((pipeline.Stage(0, 8, 4), pipeline.Stage(3, 8, 6)), "the last stage"),
    ((pipeline.Stage(0, SIZE + 4, 4), pipeline.Stage(3, CROP, 6)), "crop_size=20"),
    ((pipeline.Stage(0, 8, TRAIN_KEPT + 2), pipeline.Stage(3, CROP, 6)), "global_batch=38"),
])
def test_bad_stages_are_refused_before_reading(records, stages, match):
    with pytest.raises(pipeline.PipelineError, match=match):
        _train(records, stages=stages)


# --------------------------------------------------------------------------------------
# Errors and global arrays.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, field", [
    ({"crop_size": SIZE + 1}, "crop_size"),
    ({"global_batch": 7, "shard_count": 2}, "global_batch"),  # not divisible by processes
    ({"global_batch": TRAIN_KEPT + 1}, "global_batch"),  # more than the filtered records
    ({"global_batch": 38, "shard_count": 2, "shard_index": 1}, "global_batch"),  # 19 > 18
    ({"seed": -1}, "seed"),
])
def test_configuration_errors_name_the_field(records, kwargs, field):
    with pytest.raises(pipeline.PipelineError, match=field):
        _train(records, **kwargs)


def test_make_global_batch_on_one_device(records):
    mesh = sharding.make_mesh(jax.devices()[:1])
    batch = _take(_train(records)[0], 1)[0]
    arrays = pipeline.make_global_batch(batch, mesh)
    assert arrays["L"].shape == (6, CROP, CROP) and arrays["L"].dtype == np.uint8
    assert arrays["ab"].shape == (6, CROP, CROP, 2) and arrays["ab"].dtype == np.uint8
    assert arrays["L"].sharding == sharding.batch_sharding(mesh)
    np.testing.assert_array_equal(np.asarray(arrays["ab"]), batch["ab"])


def test_global_batch_shards_over_four_devices_in_its_own_process():
    script = textwrap.dedent("""
        import numpy as np, jax
        from jaxcolor import sharding
        from jaxcolor.data import pipeline
        mesh = sharding.local_mesh()
        assert mesh.devices.size == 4
        out = pipeline.make_global_batch({"L": np.zeros((8, 4, 4), np.uint8)}, mesh)
        assert [s.data.shape for s in out["L"].addressable_shards] == [(2, 4, 4)] * 4
        try:
            pipeline.make_global_batch({"L": np.zeros((6, 4, 4), np.uint8)}, mesh)
        except pipeline.PipelineError as e:
            assert "4 devices" in str(e)
        else:
            raise SystemExit("no error for 6 rows on 4 devices")
        print("ok")
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_mesh_check_rejects_a_batch_that_does_not_divide_over_devices(records):
    class FakeMesh:  # only the device count is consulted before any array is made
        devices = np.empty(4, object)
    with pytest.raises(pipeline.PipelineError, match="4 devices"):
        _train(records, global_batch=6, mesh=FakeMesh())


# --------------------------------------------------------------------------------------
# Worker processes.
# --------------------------------------------------------------------------------------


def test_worker_processes_yield_the_same_batches_and_resume(records):
    expected = _take(_train(records)[0], 6)
    it, _ = _train(records, num_workers=2)
    try:
        got = _take(it, 4)
        state = it.get_state()
        got += _take(it, 2)
    finally:
        it.close()
    _assert_same(got, expected)
    resumed, _ = _train(records, num_workers=2)
    try:
        resumed.set_state(state)
        _assert_same(_take(resumed, 2), expected[4:])
    finally:
        resumed.close()
