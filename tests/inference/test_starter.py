"""The starter model file: written from a run, read back without Orbax or training code, and
the one that ships in the package."""

import numpy as np
import pytest

from jaxcolor.inference import restore, starter
from jaxcolor.inference.colorizer import Colorizer
from tests.support import photo_rgb, trained_workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return trained_workdir(tmp_path_factory)


def test_a_run_written_as_a_starter_file_colours_as_the_run_does(workdir, tmp_path):
    restored = restore.restore(workdir)
    path = starter.save(restored, tmp_path / "s.npz", dtype="float32", about={"note": "t"})
    loaded = starter.load(path)
    assert loaded.step == restored.step and loaded.config.model == restored.config.model
    photo = photo_rgb(40, 60)
    run = Colorizer.from_restored(restored, backend="jax").colorize(photo)
    again = Colorizer.from_restored(loaded, backend="jax").colorize(photo)
    np.testing.assert_array_equal(run, again)
    half = starter.load(starter.save(restored, tmp_path / "h.npz"))  # float16 storage
    near = Colorizer.from_restored(half, backend="jax").colorize(photo)
    assert np.abs(near.astype(int) - run.astype(int)).max() <= 2


def test_a_damaged_starter_file_is_one_clear_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(starter.StarterError, match="bad.npz: the starter model cannot be read"):
        starter.load(tmp_path / "bad.npz")


def test_the_shipped_starter_model_loads_and_colours():
    colorizer = Colorizer.from_starter(backend="jax")
    assert colorizer.directory == starter.PATH
    photo = photo_rgb(48, 64)
    out = colorizer.colorize(photo)
    assert out.shape == photo.shape
