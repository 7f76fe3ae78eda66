"""experiments/configs/finetune.py: fine-tuning a model file (the starter by default) on a
user's photos is the file's own G, started from its weights, L1 only at a gentle rate."""

import jax
import numpy as np
from flax import nnx

from jaxcolor import configs, model_file
from jaxcolor.train import setup as setup_lib
from tests.support import trained_workdir

FINETUNE = "experiments/configs/finetune.py"


def test_by_default_it_fine_tunes_the_shipped_starter_as_it_ships():
    config = configs.load(FINETUNE)
    shipped = model_file.read(model_file.STARTER, remedy="")
    assert config.model.init_from == str(model_file.STARTER)
    for field, value in shipped.config.model.items():
        if field not in ("init_from", "backbone_weights"):
            assert np.all(np.asarray(config.model[field]) == np.asarray(value)), field
    assert config.model.chroma == shipped.config.model.chroma  # the calibration is kept
    assert config.data.crop_size == shipped.config.data.crop_size
    assert config.phases.gan_steps == 0 and config.phases.pretrain_steps > 0


def test_another_model_file_after_the_colon_is_its_g_from_its_weights(records_dir,
                                                                      tmp_path_factory):
    from jaxcolor.inference import restore, starter

    path = starter.save(restore.restore(trained_workdir(tmp_path_factory)),
                        tmp_path_factory.mktemp("files") / "mine.npz", dtype="float32")
    config = configs.load(f"{FINETUNE}:{path}")
    config.data.train = str(records_dir)
    assert config.model.init_from == str(path)
    state = setup_lib.setup(config).init_state()
    ours = jax.tree.leaves(nnx.to_pure_dict(state.g_params))
    theirs = jax.tree.leaves(nnx.to_pure_dict(starter.load(path).variables["params"]))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
