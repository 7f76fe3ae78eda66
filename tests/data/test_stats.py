"""Filter statistics (device-parallel vs numpy), the filter rules, and the normalisation."""

import os
import subprocess
import sys
import textwrap

import jax
import ml_collections
import numpy as np
import pytest
from skimage import data as skdata

from jaxcolor import color, sharding
from jaxcolor.data import batches, images, stats
from tests.support import REPO, record_stats_reference

SIZE = 32


def _encode(rgb):
    return color.encode_lab8(color.rgb_to_lab_np(rgb))


@pytest.fixture(scope="module")
def batch():
    """Colour photos, a grayscale photo, a flat colour field and noise: (L8, ab8), n = 7."""
    photos = [images.resize_and_crop(getattr(skdata, name)(), SIZE)
              for name in ("astronaut", "coffee", "chelsea", "rocket")]
    gray = images.resize_and_crop(np.repeat(skdata.camera()[..., None], 3, -1), SIZE)
    flat = np.broadcast_to(np.array([200, 30, 40], np.uint8), (SIZE, SIZE, 3))
    noise = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), np.uint8)
    return _encode(np.stack(photos + [gray, flat, noise]))


def test_device_stats_equal_numpy_reference(batch):
    L8, ab8 = batch
    ours, reference = stats.compute_stats(L8, ab8), record_stats_reference(L8, ab8)
    assert ours.dtype == stats.STATS_DTYPE and ours.shape == (7,)
    for name in stats.STATS_FIELDS:
        np.testing.assert_allclose(ours[name], reference[name], rtol=1e-4, atol=1e-3,
                                   err_msg=name)


def test_statistics_mean_what_they_say(batch):
    s = stats.compute_stats(*batch)
    photos, gray, flat = s[:4], s[4], s[5]
    assert np.all(photos["colorfulness"] > 20)
    assert gray["colorfulness"] < 0.1 and gray["a_std"] == 0 and gray["ab_max"] == 0
    assert flat["l_std"] == 0 and flat["a_std"] == 0 and flat["ab_max"] > 40
    L = color.decode_lab8(*batch)[..., 0]
    np.testing.assert_allclose(s["l_mean"], L.mean((1, 2)), atol=1e-3)


def test_default_filter_drops_gray_and_flat(batch):
    kept, removed = stats.select(stats.compute_stats(*batch), stats.FilterThresholds())
    np.testing.assert_array_equal(kept, [0, 1, 2, 3, 6])  # photos and noise
    assert removed == {"min_colorfulness": 1, "min_l_std": 1}  # gray first, then flat
    assert kept.dtype == np.int64


def test_filter_rules_can_be_disabled_or_added(batch):
    s = stats.compute_stats(*batch)
    kept, removed = stats.select(s, stats.FilterThresholds(min_colorfulness=None,
                                                           min_l_std=None))
    assert len(kept) == 7 and removed == {}
    kept, removed = stats.select(s, stats.FilterThresholds(min_ab_std=10.0))
    assert set(kept) <= {0, 1, 2, 3, 6} and removed["min_ab_std"] >= 1
    assert all(max(s["a_std"][i], s["b_std"][i]) >= 10.0 for i in kept)


def test_filter_within_candidates(batch):
    s = stats.compute_stats(*batch)
    kept, removed = stats.select(s, stats.FilterThresholds(), candidates=[1, 4, 5])
    np.testing.assert_array_equal(kept, [1])
    assert removed == {"min_colorfulness": 1, "min_l_std": 1}


def test_everything_filtered_names_the_thresholds(batch):
    s = stats.compute_stats(*batch)
    with pytest.raises(stats.EmptyFilterError, match="min_colorfulness.*1000"):
        stats.select(s, stats.FilterThresholds(min_colorfulness=1000.0))


def test_thresholds_from_config():
    cfg = ml_collections.ConfigDict({"min_colorfulness": 2.0, "min_l_std": None})
    t = stats.FilterThresholds.from_config(cfg)
    assert t == stats.FilterThresholds(min_colorfulness=2.0, min_ab_std=None, min_l_std=None)


def test_prepare_batch_normalises_like_numpy(batch):
    L8, ab8 = batch
    L, ab = batches.prepare_batch({"L": L8, "ab": ab8})
    lab = color.decode_lab8(L8, ab8)
    np.testing.assert_allclose(np.asarray(L), lab[..., :1] / 50.0 - 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ab), lab[..., 1:] / 110.0, atol=1e-6)
    L_jit, ab_jit = jax.jit(batches.prepare_batch)({"L": L8, "ab": ab8})
    np.testing.assert_allclose(np.asarray(L_jit), np.asarray(L), atol=1e-6)  # jit may fuse
    np.testing.assert_allclose(np.asarray(ab_jit), np.asarray(ab), atol=1e-6)


def test_single_device_mesh():
    mesh = sharding.local_mesh()
    assert mesh.axis_names == ("data",) and mesh.devices.size == len(jax.local_devices())


# The same equivalences on four fake CPU devices. XLA_FLAGS must be set before JAX is
# imported, so this runs in its own interpreter.
_FOUR_DEVICES = textwrap.dedent("""
    import jax, numpy as np
    from jaxcolor import color, sharding
    from jaxcolor.data import batches, stats
    from tests.support import record_stats_reference
    assert jax.device_count() == 4, jax.devices()
    mesh = sharding.local_mesh()
    assert mesh.devices.size == 4
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 16, 12, 3), np.uint8)  # 7 records: padded to 8
    rgb[3] = rgb[3, ..., :1]                            # one gray record
    L8, ab8 = color.encode_lab8(color.rgb_to_lab_np(rgb))
    ours, ref = stats.compute_stats(L8, ab8, mesh), record_stats_reference(L8, ab8)
    assert ours.shape == (7,)
    for name in stats.STATS_FIELDS:
        np.testing.assert_allclose(ours[name], ref[name], rtol=1e-4, atol=1e-3, err_msg=name)
    batch = jax.device_put((L8[:4].repeat(2, 0), ab8[:4].repeat(2, 0)),
                           sharding.batch_sharding(mesh))
    L, ab = jax.jit(batches.prepare_batch)(dict(zip(("L", "ab"), batch)))  # elementwise: stays sharded over the 4 devices
    assert len(L.sharding.device_set) == 4 and len(ab.sharding.device_set) == 4
    lab = color.decode_lab8(L8[:4].repeat(2, 0), ab8[:4].repeat(2, 0))
    np.testing.assert_allclose(np.asarray(L), lab[..., :1] / 50 - 1, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ab), lab[..., 1:] / 110, atol=1e-6)
    print("four devices agree")
""")


def test_four_fake_devices_equal_numpy():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", _FOUR_DEVICES], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "four devices agree" in result.stdout
