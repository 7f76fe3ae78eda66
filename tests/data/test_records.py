"""The records format: write/open round trip, splits, and every way a directory can be broken."""

import json
import pickle
import re

import numpy as np
import pytest

from jaxcolor.data import records, stats
from tests.support import record_stats_reference

H, W = 6, 8  # non-square, so a swapped height/width cannot pass


def _batch(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, H, W), np.uint8),
            rng.integers(0, 256, (n, H, W, 2), np.uint8))


def _write(directory, sizes=(5, 7, 3), shard_records=4, **kwargs):
    """Write batches of the given sizes with ~`shard_records` records per shard."""
    batches = [_batch(n, seed) for seed, n in enumerate(sizes)]
    with records.RecordsWriter(directory, H, W, shard_bytes=shard_records * H * W * 3,
                               source={"kind": "test"}, **kwargs) as writer:
        for L, ab in batches:
            writer.add(L, ab)
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


@pytest.fixture
def written(tmp_path):
    out = tmp_path / "recs"
    L, ab = _write(out, val_every=4)
    return out, L, ab


# --------------------------------------------------------------------------------------
# Round trip.
# --------------------------------------------------------------------------------------


def test_round_trip_across_shards(written):
    out, L, ab = written
    recs = records.Records(out)
    assert len(recs) == 15 and recs.image_size == (H, W)
    assert [s["count"] for s in recs.manifest.shards] == [4, 4, 4, 3]  # batches straddle shards
    for i in range(len(recs)):
        li, abi = recs[i]
        np.testing.assert_array_equal(li, L[i])
        np.testing.assert_array_equal(abi, ab[i])
    np.testing.assert_array_equal(recs[-1][0], L[-1])
    idx = np.array([14, 0, 5, 5, 9, 3])  # unsorted, repeated, several shards
    L_read, ab_read = recs.read(idx)
    np.testing.assert_array_equal(L_read, L[idx])
    np.testing.assert_array_equal(ab_read, ab[idx])
    assert recs.read([])[0].shape == (0, H, W)


def test_shards_are_memory_mapped_and_stats_stored(written):
    out, L, ab = written
    recs = records.Records(out)
    shard_L, shard_ab = recs._open()[0]
    assert isinstance(shard_L, np.memmap) and isinstance(shard_ab, np.memmap)
    assert recs.stats.dtype == stats.STATS_DTYPE
    expected = record_stats_reference(L, ab)
    for name in stats.STATS_FIELDS:
        np.testing.assert_allclose(recs.stats[name], expected[name], rtol=1e-3, atol=1e-2)


def test_manifest_records_provenance_and_skips(tmp_path):
    out = tmp_path / "recs"
    with records.RecordsWriter(out, H, W, source={"kind": "test", "src": "x"}) as writer:
        writer.add(*_batch(3, 0))
        writer.skip("bad.jpg", "empty file")
    manifest = json.loads((out / records.MANIFEST).read_text())
    assert manifest["version"] == records.FORMAT_VERSION
    assert manifest["encoding"] == records.ENCODING
    assert manifest["count"] == 3 and (manifest["height"], manifest["width"]) == (H, W)
    assert manifest["source"]["src"] == "x" and "created" in manifest["source"]
    assert manifest["skipped"] == [{"path": "bad.jpg", "reason": "empty file"}]
    assert records.Records(out).manifest.skipped == ({"path": "bad.jpg", "reason": "empty file"},)


def test_val_split_is_every_kth_and_disjoint(written):
    recs = records.Records(written[0])
    val, train = recs.split("val"), recs.split("train")
    np.testing.assert_array_equal(val, [0, 4, 8, 12])
    assert not set(val) & set(train)
    np.testing.assert_array_equal(np.sort(np.concatenate([val, train])), recs.split("all"))
    with pytest.raises(ValueError, match="unknown split 'test'"):
        recs.split("test")


def test_no_val_split_when_val_every_is_zero(tmp_path):
    _write(tmp_path / "recs", val_every=0)
    recs = records.Records(tmp_path / "recs")
    assert recs.split("val").size == 0 and recs.split("train").size == len(recs)


def test_pickled_records_reopen_lazily(written):
    out, L, _ = written
    recs = records.Records(out)
    clone = pickle.loads(pickle.dumps(recs))
    assert clone._shards is None  # no memmap travels to a worker process
    np.testing.assert_array_equal(clone[7][0], L[7])


def test_out_of_range_index(written):
    recs = records.Records(written[0])
    with pytest.raises(IndexError):
        recs[15]
    with pytest.raises(IndexError):
        recs.read([0, 15])


# --------------------------------------------------------------------------------------
# The writer: atomic, refuses to clobber, checks what it is given.
# --------------------------------------------------------------------------------------


def test_exception_inside_writer_leaves_nothing(tmp_path):
    out = tmp_path / "recs"
    with pytest.raises(KeyboardInterrupt):
        with records.RecordsWriter(out, H, W, shard_bytes=2 * H * W * 3) as writer:
            writer.add(*_batch(5, 0))  # two full shards already on disk in the temp dir
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []  # neither `out` nor the temporary directory


def test_existing_out_is_refused_and_untouched(written):
    out, L, _ = written
    with pytest.raises(records.RecordsError, match=re.escape(str(out)) + ".*already exists"):
        records.RecordsWriter(out, H, W)
    np.testing.assert_array_equal(records.Records(out)[0][0], L[0])


def test_overwrite_replaces(written):
    out = written[0]
    L, _ = _write(out, sizes=(2,), overwrite=True)
    recs = records.Records(out)
    assert len(recs) == 2
    np.testing.assert_array_equal(recs[1][0], L[1])


@pytest.mark.parametrize("L, ab, message", [
    (np.zeros((2, H, W), np.float32), np.zeros((2, H, W, 2), np.uint8), "must be uint8"),
    (np.zeros((2, W, H), np.uint8), np.zeros((2, W, H, 2), np.uint8), "do not match"),
    (np.zeros((2, H, W), np.uint8), np.zeros((3, H, W, 2), np.uint8), "do not match"),
])
def test_writer_rejects_bad_batches(tmp_path, L, ab, message):
    with pytest.raises(records.RecordsError, match=message):
        with records.RecordsWriter(tmp_path / "recs", H, W) as writer:
            writer.add(L, ab)
    assert list(tmp_path.iterdir()) == []


def test_writer_with_no_records_fails_and_leaves_nothing(tmp_path):
    with pytest.raises(records.RecordsError, match="no records were written"):
        with records.RecordsWriter(tmp_path / "recs", H, W) as writer:
            writer.skip("a.jpg", "corrupt")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# Validation on open: each damage gives an error naming the file and the problem.
# --------------------------------------------------------------------------------------


def _edit_manifest(out, **changes):
    path = out / records.MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def _flip_header_bytes(path):
    data = bytearray(path.read_bytes())
    start = data.index(b"descr")
    data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
    path.write_bytes(bytes(data))


def _flip_magic(path):
    data = bytearray(path.read_bytes())
    data[1] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _manifest_shards(out):
    return json.loads((out / records.MANIFEST).read_text())["shards"]


DAMAGE = {
    "missing manifest": (lambda out: (out / "manifest.json").unlink(),
                         "manifest.json: missing"),
    "garbled manifest": (lambda out: (out / "manifest.json").write_text("{not json"),
                         "manifest.json: unreadable manifest"),
    "unknown version": (lambda out: _edit_manifest(out, version=99),
                        "manifest.json: unknown format version 99"),
    "unknown encoding": (lambda out: _edit_manifest(out, encoding="rgb"),
                         "manifest.json: unknown encoding 'rgb'"),
    "missing field": (lambda out: _edit_manifest(out, height=None),
                      "manifest.json: malformed manifest field"),
    "count disagrees with shards": (lambda out: _edit_manifest(out, count=16),
                                    "manifest.json: shard counts add up to 15 but count is 16"),
    "shard count disagrees with file": (
        lambda out: _edit_manifest(out, count=16, shards=[
            {**s, "count": s["count"] + (i == 0)} for i, s in enumerate(_manifest_shards(out))]),
        r"L-00000.npy: shape \(4, 6, 8\), manifest says \(5, 6, 8\)"),
    "missing shard": (lambda out: (out / "ab-00002.npy").unlink(), "ab-00002.npy: shard missing"),
    "truncated shard": (lambda out: _truncate(out / "L-00001.npy"),
                        "L-00001.npy: unreadable or truncated shard"),
    "flipped header bytes": (lambda out: _flip_header_bytes(out / "ab-00000.npy"),
                             "ab-00000.npy: unreadable or truncated shard"),
    "flipped magic": (lambda out: _flip_magic(out / "L-00002.npy"),
                      "L-00002.npy: not a .npy file .*; the shard is damaged"),
    "wrong dtype": (lambda out: np.save(out / "L-00003.npy", np.zeros((3, H, W), np.int16)),
                    "L-00003.npy: dtype int16, expected uint8"),
    "wrong shape": (lambda out: np.save(out / "ab-00003.npy", np.zeros((3, W, H, 2), np.uint8)),
                    r"ab-00003.npy: shape \(3, 8, 6, 2\), manifest says \(3, 6, 8, 2\)"),
    "missing stats": (lambda out: (out / "stats.npy").unlink(),
                      "stats.npy: statistics file missing"),
    "stats rows wrong": (lambda out: np.save(out / "stats.npy",
                                             np.zeros(14, stats.STATS_DTYPE)),
                         "stats.npy: 14 rows for 15 records"),
    "stats fields wrong": (lambda out: np.save(out / "stats.npy", np.zeros(15, np.float32)),
                           "stats.npy: fields None"),
    "truncated stats": (lambda out: _truncate(out / "stats.npy", keep=0.9),
                        "stats.npy: unreadable or truncated statistics file"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_open_names_the_broken_file(written, damage):
    out = written[0]
    break_it, message = DAMAGE[damage]
    break_it(out)
    with pytest.raises(records.RecordsError, match=message) as info:
        records.Records(out)
    assert str(out) in str(info.value)  # the full path, not just the file name
    assert "\n" not in str(info.value)


def test_open_missing_directory(tmp_path):
    with pytest.raises(records.RecordsError, match="does not exist"):
        records.Records(tmp_path / "nope")
