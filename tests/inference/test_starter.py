"""The starter model file: written from a run, read back without Orbax or training code, and
the one that ships in the package."""

import numpy as np
import pytest

from jaxcolor import model_file
from jaxcolor.errors import UsageError
from jaxcolor.inference import restore, starter
from jaxcolor.inference.colorizer import Colorizer
from tests.support import assert_trees_equal, photo_rgb, trained_workdir


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


def test_the_writer_ships_a_calibration_and_refuses_a_temperature_without_a_bins_head(
        workdir, tmp_path, capsys):
    starter.main([str(workdir), str(tmp_path / "c.npz"), "--chroma", "1.5"])
    assert "wrote" in capsys.readouterr().out
    assert starter.load(tmp_path / "c.npz").config.model.chroma == 1.5
    # A model file is written again with a new calibration, its weights unchanged.
    starter.main([str(tmp_path / "c.npz"), str(tmp_path / "g.npz"), "--chroma_gamma", "1.5"])
    first, again = starter.load(tmp_path / "c.npz"), starter.load(tmp_path / "g.npz")
    assert (again.config.model.chroma, again.config.model.chroma_gamma) == (1.5, 1.5)
    assert_trees_equal(first.variables, again.variables)
    with pytest.raises(UsageError, match="--temperature: .* has no bins head"):
        starter.main([str(workdir), str(tmp_path / "t.npz"), "--temperature", "0.2"])
    assert not (tmp_path / "t.npz").exists()


def test_a_damaged_starter_file_is_one_clear_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(model_file.ModelFileError, match="bad.npz: the model file cannot be read"):
        starter.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))  # an .npz, but not one of ours
    with pytest.raises(model_file.ModelFileError, match="other.npz: not a jaxcolor model file"):
        starter.load(tmp_path / "other.npz")


def test_checkpoint_names_a_run_a_model_file_or_by_default_the_starter(workdir, tmp_path):
    path = starter.save(restore.restore(workdir), tmp_path / "m.npz", dtype="float32")
    assert starter.restore_model(path).directory == path
    assert starter.restore_model(workdir).directory == workdir.absolute() / "checkpoints"
    assert starter.restore_model(None).directory == starter.PATH
    with pytest.raises(UsageError, match="a model file \\(.npz\\) holds one"):
        starter.restore_model(path, step=2)
    with pytest.raises(UsageError, match="missing.npz: no such model file"):
        starter.restore_model(tmp_path / "missing.npz")


def test_the_shipped_starter_model_loads_and_colours():
    colorizer = Colorizer.from_starter(backend="jax")
    assert colorizer.directory == starter.PATH
    photo = photo_rgb(48, 64)
    out = colorizer.colorize(photo)
    assert out.shape == photo.shape


@pytest.fixture(scope="module")
def shipped():
    return Colorizer.from_starter(backend="jax")


def test_with_the_shipped_starter_a_red_hint_reddens_its_patch_only(shipped):
    """A flat gray square on a darker textured photo: a red hint in the square turns the
    square red; the photo around it, of another lightness, keeps its colours; L is kept."""
    from jaxcolor import color
    from jaxcolor.inference import hints
    from tests.support import assert_keeps_lightness

    photo = (photo_rgb(160, 160).astype(np.float32) * 0.5).astype(np.uint8)  # L mostly < 50
    photo[40:120, 40:120] = 190  # a flat light-gray square
    given = hints.parse([{"x": 80, "y": 80, "color": "#d02020", "radius": 6}], "h")
    automatic, hinted = shipped.colorize([photo, photo], hints=[None, given])
    assert_keeps_lightness(photo, hinted)
    a_auto, a_hint = (color.rgb_to_lab_np(x)[..., 1] for x in (automatic, hinted))
    assert a_hint[50:110, 50:110].mean() > a_auto[50:110, 50:110].mean() + 15  # red
    outside = np.ones((160, 160), bool)
    outside[24:136, 24:136] = False
    ab_auto, ab_hint = (color.rgb_to_lab_np(x)[..., 1:] for x in (automatic, hinted))
    assert np.abs(ab_hint - ab_auto)[outside].max() < 3.0
