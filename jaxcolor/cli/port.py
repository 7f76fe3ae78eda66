"""`jaxcolor port`: torchvision / timm ResNet weights -> an Orbax encoder checkpoint.

Point `config.model.backbone_weights` at the output to start G's encoder from ImageNet.
Reading `.pth` needs torch; `.safetensors` (timm) needs only the safetensors package.
Library side: `jaxcolor.models.port`.
"""

from __future__ import annotations

import argparse

from jaxcolor import errors
from jaxcolor.cli import common

HELP = "convert torchvision/timm ResNet weights into an encoder checkpoint for training"
EXAMPLES = common.examples(
    "jaxcolor port resnet101-63fe2227.pth /weights/r101",
    "jaxcolor port model.safetensors /weights/r50 --depth=50",
    "python experiments/run.py --config=experiments/configs/gan.py --workdir=/runs/gan101 \\\n"
    "      --config.model.backbone_weights=/weights/r101")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcolor.models.resnet import STAGE_SIZES

    parser.add_argument("src", help="torch .pth/.pt or .safetensors state dict")
    parser.add_argument("out", help="new Orbax checkpoint directory (must not exist)")
    parser.add_argument("--depth", type=int, choices=sorted(STAGE_SIZES),
                        help="ResNet depth (default: inferred from the keys)")
    parser.add_argument("--include_fc", action="store_true",
                        help="keep the classifier head (default: drop it)")


def run(args: argparse.Namespace) -> int:
    from flax import nnx

    from jaxcolor.models import factory, port

    state_dict = port.load_state_dict(args.src)
    depth = args.depth or port.infer_depth(state_dict)
    model = port.resnet_from_state_dict(state_dict, depth, include_fc=args.include_fc,
                                        source=args.src)
    out = port.save_encoder_checkpoint(model, args.out, include_fc=args.include_fc)
    head = "with fc head" if args.include_fc else "encoder only"
    print(f"wrote {out}: ResNet-{depth}, "
          f"{factory.count_params(nnx.state(model, nnx.Param)):,} params ({head})")
    return errors.EXIT_OK
