"""The yardstick for CPU colourisation: the same generator in PyTorch, eval mode, on the CPU.

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch torchvision
    /tmp/torchvenv/bin/python -m benchmarks.torch_reference --render 224,512 --batch 1,8

torch is never a dependency of jaxcolor (nor of its tests): run this from a separate virtual
environment. It rebuilds `jaxcolor.models.generator.UNetGenerator` (gan.py: ResNet-101
encoder, decoder widths 256..16) from torchvision's ResNet and checks that its parameter
count equals jaxcolor's (45,924,978, pinned by tests/models/test_generator.py), then times
the forward pass on a batch of L as `benchmarks.inference` times `inference/model_host`
(median of windows after a warm-up), in `torch.inference_mode`, with the channels-last
memory format when it is faster. One JSON line per render size and batch, appended to the
results file like every other benchmark.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from benchmarks import common  # stdlib only at import: runs in a venv without jax

JAXCOLOR_G_PARAMS = 45_924_978  # UNetGenerator("resnet101"); see tests/models/test_generator.py


def conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, skip: int, width: int, narrow_skip: bool):
        super().__init__()
        self.skip_proj = conv_bn_relu(skip, width, 1) if narrow_skip else None
        skip = width if narrow_skip else skip
        self.conv1 = conv_bn_relu(cin + skip, width, 3)
        self.conv2 = conv_bn_relu(width, width, 3)

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if self.skip_proj is not None:
            skip = self.skip_proj(skip)
        return self.conv2(self.conv1(torch.cat([x, skip], 1)))


class TorchUNetGenerator(nn.Module):
    """jaxcolor's UNetGenerator, layer for layer (random weights: the cost is the same)."""

    def __init__(self, widths=(256, 128, 64, 32, 16)):
        super().__init__()
        r = torchvision.models.resnet101(weights=None)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.pool = r.maxpool
        self.layers = nn.ModuleList([r.layer1, r.layer2, r.layer3, r.layer4])
        self.bridge = conv_bn_relu(2048, widths[0], 1)
        skips, cin, blocks = (1024, 512, 256, 64, 1), widths[0], []
        for i, (skip, width) in enumerate(zip(skips, widths)):
            blocks.append(DecoderBlock(cin, skip, width, narrow_skip=i < 4))
            cin = width
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(widths[-1], 2, 3, padding=1)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, l_norm):  # [B, 1, H, W] in [-1, 1]
        L = (l_norm + 1.0) * 50.0  # the gray sRGB value L stands for, as jaxcolor's encoder sees
        fy = (L + 16.0) / 116.0
        y = torch.where(fy > 6.0 / 29.0, fy ** 3, (fy - 4.0 / 29.0) * 3 * (6.0 / 29.0) ** 2)
        gray = torch.where(y > 0.0031308, 1.055 * y.clamp(min=0.0031308) ** (1 / 2.4) - 0.055,
                           12.92 * y).clamp(0, 1)
        x = (gray.expand(-1, 3, -1, -1) - self.mean) / self.std
        stem = self.stem(x)
        feats, y = [stem], self.pool(stem)
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        x = self.bridge(feats[4])
        for block, skip in zip(self.decoder, (feats[3], feats[2], feats[1], feats[0], l_norm)):
            x = block(x, skip)
        return torch.tanh(self.head(x))


def median_rate(fn, images: int, windows: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        fn()
        rates.append(images / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--render", default="224,512", help="render sizes, comma list")
    p.add_argument("--batch", default="1,8", help="batch sizes, comma list")
    p.add_argument("--steps", type=int, default=2, help="forward passes per window")
    p.add_argument("--windows", type=int, default=3)
    common.add_out_arg(p, "torch_reference")
    args = p.parse_args(argv)

    model = TorchUNetGenerator().eval()
    params = sum(t.numel() for t in model.parameters())
    if params != JAXCOLOR_G_PARAMS:
        raise SystemExit(f"parameter count {params:,} != jaxcolor's {JAXCOLOR_G_PARAMS:,}: "
                         "the PyTorch rebuild no longer matches UNetGenerator")
    results = []
    for render in (int(r) for r in args.render.split(",")):
        for batch in (int(b) for b in args.batch.split(",")):
            x = torch.rand(batch, 1, render, render) * 2 - 1
            best = None
            for channels_last in (False, True):
                m = model.to(memory_format=torch.channels_last if channels_last else
                             torch.contiguous_format)
                xi = x.contiguous(memory_format=torch.channels_last) if channels_last else x

                def window():
                    for _ in range(args.steps):
                        m(xi)

                with torch.inference_mode():
                    window()  # warm-up
                    rate, rates = median_rate(window, args.steps * batch, args.windows)
                if best is None or rate > best[0]:
                    best = (rate, rates, channels_last)
            rate, rates, channels_last = best
            result = {
                "figure": "torch_reference/model_host", "value": round(rate, 2),
                "unit": "images/s", "batch": batch, "resolution": render,
                "windows": [round(r, 2) for r in rates],
                "config": {"backbone": "resnet101", "decoder_widths": [256, 128, 64, 32, 16],
                           "params": params, "channels_last": channels_last,
                           "steps": args.steps},
                "torch": torch.__version__, "torchvision": torchvision.__version__,
                "threads": torch.get_num_threads(), "device_kind": "cpu", "device_count": 1,
                "python": platform.python_version(), "cpu_count": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            common.emit(result, args.out)
            results.append(result)
    return results


if __name__ == "__main__":
    main()
