"""The rainbow-sky measure: what counts as paint, and the worst photos drawn side by side."""

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sky_paint():
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(REPO))
    from benchmarks import sky_paint

    yield sky_paint
    mp.undo()


def _flat(rgb):
    return np.broadcast_to(np.array(rgb, np.uint8), (8, 8, 3)).copy()


def test_paint_is_the_share_of_strong_blue_cyan_and_magenta(sky_paint):
    assert sky_paint.paint(_flat((40, 90, 220))) == 1.0  # sky blue
    assert sky_paint.paint(_flat((0, 200, 220))) == 1.0  # cyan
    assert sky_paint.paint(_flat((200, 60, 230))) == 1.0  # violet-magenta
    assert sky_paint.paint(_flat((128, 128, 128))) == 0.0  # gray
    assert sky_paint.paint(_flat((120, 125, 135))) == 0.0  # a faint blue-gray: too dull
    assert sky_paint.paint(_flat((200, 120, 40))) == 0.0  # warm
    half = _flat((128, 128, 128))
    half[:4] = (40, 90, 220)
    assert sky_paint.paint(half) == 0.5


def test_the_worst_photos_of_the_first_model_side_by_side(sky_paint, tmp_path,
                                                          tmp_path_factory):
    from PIL import Image

    from tests.support import photo_rgb, trained_workdir

    workdir = trained_workdir(tmp_path_factory)
    for i in range(3):
        path = tmp_path / "pool" / ("sky" if i < 2 else "other") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_rgb(260, 300, seed=i)).save(path)
    line = sky_paint.main(["--photos", str(tmp_path / "pool"), "--sources", "sky",
                           "--models", f"{workdir},{workdir}@2", "--worst", "1",
                           "--val_fraction", "1", "--sheet", str(tmp_path / "s.jpg"),
                           "--out", ""])
    assert line["photos"] == 2 and len(line["worst"]) == 1
    assert line["worst"][0]["photo"].startswith("pool/sky/")
    assert Image.open(tmp_path / "s.jpg").size == (3 * 256, 256)  # truth | each model
    with pytest.raises(SystemExit, match="no validation photos"):
        sky_paint.main(["--photos", str(tmp_path / "pool"), "--sources", "none",
                        "--models", str(workdir), "--sheet", str(tmp_path / "t.jpg")])
