"""`config.model` -> networks: the backbone field, and the configs of older checkpoints."""

import pytest
from flax import nnx

from jaxcolor import configs
from jaxcolor.errors import UsageError
from jaxcolor.models import factory


def model_config(**fields):
    cfg = configs.load("experiments/configs/demo.py").model
    del cfg["backbone"]
    for name, value in fields.items():
        cfg[name] = value
    return cfg


def structure(model):
    return {p: (v.shape, v.dtype) for p, v in nnx.to_flat_state(nnx.state(model))}


def test_an_old_config_with_only_depth_restores_as_that_resnet():
    """Checkpoints written before `model.backbone` existed saved `model.depth`: their config
    must rebuild exactly the generator they hold, the ResNet of that depth."""
    old = model_config(depth=34)
    assert factory.backbone(old) == "resnet34"
    new = model_config(backbone="resnet34")
    assert structure(factory.abstract_generator(old)) == structure(
        factory.abstract_generator(new))
    assert type(factory.abstract_generator(old).encoder).__name__ == "ResNet"


def test_the_backbone_wins_over_a_leftover_depth_and_is_validated():
    assert factory.backbone(model_config(backbone="mobilenet_v2", depth=101)) == "mobilenet_v2"
    with pytest.raises(UsageError, match=r"config.model.backbone: unknown 'resnet42'; choose "
                                         r"one of resnet18, .*efficientnet_lite0"):
        factory.backbone(model_config(backbone="resnet42"))
    with pytest.raises(UsageError, match="config.model.backbone: missing"):
        factory.backbone(model_config())


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0", "resnet18"])
def test_the_backbone_reaches_the_generator(backbone):
    g = factory.abstract_generator(model_config(backbone=backbone))
    count = factory.count_params(nnx.state(g.encoder, nnx.Param))
    # The reference classifiers' counts less their heads (EfficientNet's includes the
    # 320 -> 1280 head conv and its BatchNorm).
    assert count == {"mobilenet_v2": 3_504_872 - 1_281_000,
                     "efficientnet_lite0": 4_652_008 - 1_281_000 - 320 * 1280 - 2 * 1280,
                     "resnet18": 11_689_512 - 513_000}[backbone]


def test_the_colour_head_reaches_the_generator_and_old_configs_regress():
    old = model_config(backbone="resnet18")
    del old["colour_head"], old["temperature"]  # saved before the bins head existed
    assert factory.abstract_generator(old).colour_head == "regression"
    g = factory.abstract_generator(model_config(backbone="resnet18", colour_head="bins",
                                                temperature=0.5))
    assert (g.colour_head, g.temperature, g.head.kernel.shape[-1]) == ("bins", 0.5, 265)
    with pytest.raises(UsageError, match="config.model.colour_head: unknown 'ordinal'"):
        factory.colour_head(model_config(colour_head="ordinal"))
    with pytest.raises(UsageError, match="config.model.temperature: -1"):
        factory.colour_head(model_config(colour_head="bins", temperature=-1))
