"""Everything after training: restore G, colourise photos of any size, evaluate, export.

    from jaxcolor.inference import Colorizer
    colorizer = Colorizer.from_checkpoint("/runs/gan101")

Modules: `restore` (checkpoint -> G's variables + the run's config), `colorizer`
(`Colorizer`), `photo` (host-side pixel work around the network), `files` and `pipeline`
(folders of photos in, folders of colour photos out), `evaluation` (metrics beside the gray
baseline), `onnx` (export and the ONNX Runtime backend). Nothing here imports
`jaxcolor.train`: colourising needs neither optax states, nor Grain, nor the discriminator.
Names are resolved lazily, so importing one module does not load the others.
"""

__all__ = ["Colorizer", "Photo"]


def __getattr__(name):
    if name == "Colorizer":
        from jaxcolor.inference.colorizer import Colorizer

        return Colorizer
    if name == "Photo":
        from jaxcolor.inference.photo import Photo

        return Photo
    raise AttributeError(f"module 'jaxcolor.inference' has no attribute {name!r}")
