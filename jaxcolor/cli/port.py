"""`jaxcolor port`: ImageNet weights (ResNet, MobileNetV2, EfficientNet-Lite0) -> an Orbax
encoder checkpoint.

Point `config.model.backbone_weights` at the output (with the matching
`config.model.backbone`) to start G's encoder from ImageNet. The architecture is read from
the keys (`--arch` overrides). `--classify` also prints each photo's top-5 ImageNet classes
from the converted network, with its head: the quick proof that the weights came across.
Reading `.pth` needs torch; `.safetensors` needs only the safetensors package.
Library side: `jaxcolor.models.port`.
"""

from __future__ import annotations

import argparse
import sys

from jaxcolor import errors
from jaxcolor.cli import common

HELP = ("convert ResNet / MobileNetV2 / EfficientNet-Lite0 ImageNet weights into an encoder "
        "checkpoint for training")
EXAMPLES = common.examples(
    "jaxcolor port resnet101-63fe2227.pth /weights/r101",
    "jaxcolor port mobilenet_v2-b0353104.pth /weights/mnv2 --classify cat.jpg cup.png",
    "jaxcolor port model.safetensors /weights/r50 --arch=resnet50",
    "python experiments/run.py --config=experiments/configs/gan.py --workdir=/runs/mnv2 \\\n"
    "      --config.model.backbone=mobilenet_v2 --config.model.backbone_weights=/weights/mnv2")

CROP = 224  # torchvision's eval transform: short side to 256, centre 224 x 224
RESIZE = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcolor.models.encoders import BACKBONES

    parser.add_argument("src", help="torch .pth/.pt or .safetensors state dict")
    parser.add_argument("out", help="new Orbax checkpoint directory (must not exist)")
    parser.add_argument("--arch", choices=BACKBONES,
                        help="the network (default: inferred from the keys)")
    parser.add_argument("--include_head", action="store_true",
                        help="keep the classification head in OUT (default: drop it)")
    parser.add_argument("--classify", nargs="+", metavar="PHOTO", default=[],
                        help="print each photo's top-5 ImageNet classes from the converted "
                             "network")


def run(args: argparse.Namespace) -> int:
    from flax import nnx

    from jaxcolor.models import factory, port

    state_dict = port.load_state_dict(args.src)
    backbone = args.arch or port.infer_backbone(state_dict, source=args.src)
    model = port.network_from_state_dict(state_dict, backbone, source=args.src,
                                         include_head=args.include_head or bool(args.classify))
    has_head = all(getattr(model, n) is not None for n in type(model).head_names)
    if args.classify and not has_head:
        raise errors.UsageError(f"--classify: {args.src} has no classification head")
    out = port.save_encoder_checkpoint(model, args.out, include_head=args.include_head)
    head = "with head" if args.include_head and has_head else "encoder only"
    print(f"wrote {out}: {backbone}, "
          f"{factory.count_params(nnx.state(model, nnx.Param)):,} params ported ({head})")
    return classify_photos(model, args.classify) if args.classify else errors.EXIT_OK


def classify_photos(model, photos: list[str]) -> int:
    """Prints each photo's top 5 as `index  name  probability` lines under its path; a photo
    that cannot be decoded is reported and skipped (exit status 1)."""
    from jaxcolor.data import images
    from jaxcolor.models import imagenet

    failed = 0
    for photo in photos:
        try:
            rgb = images.resize_short_side(images.load_image_rgb(photo, min_size=RESIZE), RESIZE)
        except images.ImageDecodeError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        crop = images.center_crop(rgb, CROP, CROP)
        top = imagenet.top_k(imagenet.probabilities(model, crop[None])[0])
        width = max(len(name) for _, name, _ in top)
        print(photo)
        for index, name, prob in top:
            print(f"  {index:4d}  {name:<{width}}  {prob:.4f}")
    return errors.EXIT_FAILED if failed else errors.EXIT_OK
