"""jaxcolor: colourise grayscale photographs with a ResNet U-Net GAN in JAX / Flax NNX.

The public entry points are the CLIs (`experiments/run.py`, `python -m jaxcolor.data.ingest`,
`python -m jaxcolor.colorize`, `python -m jaxcolor.evaluate`, `python -m jaxcolor.models.port`)
and, for notebooks, `jaxcolor.Colorizer`. Names are resolved lazily so that `import jaxcolor`
does not start JAX.
"""

__version__ = "0.1.0"
__all__ = ["Colorizer"]


def __getattr__(name):
    if name == "Colorizer":
        from jaxcolor.infer import Colorizer

        return Colorizer
    raise AttributeError(f"module 'jaxcolor' has no attribute {name!r}")
