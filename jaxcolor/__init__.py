"""jaxcolor: colourise grayscale photographs with a ResNet U-Net GAN in JAX / Flax NNX.

Entry points: the `jaxcolor` command (`jaxcolor --help`: ingest, colorize, evaluate, export,
port), `experiments/run.py` for training, and for notebooks `jaxcolor.Colorizer`. Names are
resolved lazily so that `import jaxcolor` does not start JAX.
"""

__version__ = "0.1.0"
__all__ = ["Colorizer"]


def __getattr__(name):
    if name == "Colorizer":
        from jaxcolor.inference.colorizer import Colorizer

        return Colorizer
    raise AttributeError(f"module 'jaxcolor' has no attribute {name!r}")
