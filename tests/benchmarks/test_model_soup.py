"""benchmarks.model_soup: the weighted mean of model files of one generator, written in the
first file's format and config; files of another generator refused by name."""

import ml_collections
import numpy as np
import pytest

from benchmarks import model_soup
from jaxcolor import model_file


def _file(path, scale: float, *, shape=(3, 4), dtype="float16"):
    arrays = {"params/layers/0/kernel": np.full(shape, scale, dtype),
              "batch_stats/layers/1/mean": np.full((4,), 2 * scale, dtype),
              "params/steps": np.array([7], np.int32)}
    config = ml_collections.ConfigDict({"model": {"chroma": scale}})
    return model_file.write_arrays(path, arrays, config, {"step": int(scale)})


def test_the_soup_is_the_weighted_mean_in_the_first_files_dtype_and_config(tmp_path, capsys):
    paths = [_file(tmp_path / f"{s}.npz", s) for s in (1.0, 2.0, 4.0)]
    model_soup.main([str(tmp_path / "soup.npz"), *map(str, paths)])
    assert "the mean of 3 model files" in capsys.readouterr().out
    soup = model_file.read(tmp_path / "soup.npz", remedy="")
    kernel = soup.arrays["params/layers/0/kernel"]
    assert kernel.dtype == np.float16 and np.allclose(kernel, 7 / 3, atol=1e-3)
    assert np.allclose(soup.arrays["batch_stats/layers/1/mean"], 14 / 3, atol=1e-2)
    np.testing.assert_array_equal(soup.arrays["params/steps"], [7])
    assert soup.config.model.chroma == 1.0 and soup.about["step"] == 1
    assert soup.about["soup"]["inputs"] == list(map(str, paths))

    model_soup.main([str(tmp_path / "w.npz"), str(paths[0]), str(paths[1]),
                     "--weights", "3,1"])
    weighted = model_file.read(tmp_path / "w.npz", remedy="").arrays
    assert np.allclose(weighted["params/layers/0/kernel"], 1.25)


def test_files_of_another_generator_or_bad_weights_are_one_clear_error(tmp_path, capsys):
    a = _file(tmp_path / "a.npz", 1.0)
    b = _file(tmp_path / "b.npz", 1.0, shape=(3, 5))
    with pytest.raises(SystemExit) as exit_:
        model_soup.main([str(tmp_path / "s.npz"), str(a), str(b)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"{b}: another generator than {a}'s (params/layers/0/kernel and 0 more differ)" \
        in err
    with pytest.raises(SystemExit):
        model_soup.main([str(tmp_path / "s.npz"), str(a), str(a), "--weights", "1"])
    assert "--weights: 2 non-negative numbers" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()
