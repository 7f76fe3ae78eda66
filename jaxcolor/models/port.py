"""torch ImageNet weights -> jaxcolor's Flax networks, and the encoder checkpoint.

Three layouts: torchvision / timm ResNets (`conv1`, `layer1.0...`, `fc`), torchvision's
MobileNetV2 (`features.N...`, `classifier.1`) and EfficientNet-PyTorch's EfficientNet-Lite0
(`_conv_stem`, `_blocks.N...`, `_fc`). Porting is a strict, key-for-key rename because each
module (`resnet.py`, `mobilenet.py`, `efficientnet.py`) mirrors its reference's names: the
nnx state path ('layer3', 0, 'downsample', 0, 'kernel') is torch's
`layer3.0.downsample.0.weight`. Only the layouts differ:

    conv weight  OIHW -> kernel HWIO  (transpose(2, 3, 1, 0); depthwise: O = C, I = 1)
    linear weight [out, in] -> kernel [in, out]
    bn weight -> scale, bias -> bias, running_mean -> mean, running_var -> var (BatchStat)
    num_batches_tracked: dropped (flax's BatchNorm has no counter)

Strict means every mismatch is collected and reported at once in one `PortError`: a silently
half-loaded encoder trains, but badly, and nobody notices for days.

The generator does not read torch files: `jaxcolor port SRC OUT` (`jaxcolor.cli.port`)
converts once into an Orbax checkpoint (`save_encoder_checkpoint`), which the generator's
`model.backbone_weights` points to and `load_encoder_checkpoint` restores into any encoder
module. That checkpoint holds params and batch statistics as a pure dict
(`nnx.to_pure_dict`), without the classification head (each class's `head_names`) unless
asked for (`include_head`): an encoder has no use for ImageNet's classifier.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, traverse_util

from jaxcolor.errors import MissingPathError, RunError, require
from jaxcolor.models import encoders
from jaxcolor.models.resnet import STAGE_SIZES, Bottleneck

_MAX_LISTED = 6  # keys named per category in an error message; the exception keeps them all


class PortError(RunError, ValueError):
    """A checkpoint cannot be read, or its keys/shapes do not fit the model.

    `missing`, `unexpected` and `mismatched` hold the complete lists; the message names the
    first few of each on one line.
    """

    def __init__(self, message, *, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)


# --------------------------------------------------------------------------------------
# Reading torch state dicts.
# --------------------------------------------------------------------------------------


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a `.safetensors` (timm, or converted) or `.pth`/`.pt`/`.bin` (torch) state dict.

    torch and safetensors are optional: each is imported only for its own format.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingPathError(f"{path}: no such file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".safetensors":
        load_file = require("safetensors.numpy", "port").load_file
        try:
            return dict(load_file(path))
        except Exception as e:  # safetensors raises its own SafetensorError for bad headers
            raise PortError(f"{path}: not a readable .safetensors file ({e})") from None
    if suffix in (".pth", ".pt", ".bin"):
        return _load_torch_file(path)
    raise PortError(
        f"{path}: unknown checkpoint format {suffix!r}; expected .safetensors, .pth or .pt"
    )


def _load_torch_file(path: str) -> dict[str, np.ndarray]:
    torch = require("torch", "port")  # for CPU only: pip install torch --index-url .../cpu
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        first_line = str(e).strip().split("\n")[0]  # torch's messages run to paragraphs
        raise PortError(f"{path}: not a readable torch file ({first_line})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]  # training checkpoints often wrap the weights
    if not isinstance(obj, Mapping):
        raise PortError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    out = {}
    for key, tensor in obj.items():
        if not isinstance(tensor, torch.Tensor):
            raise PortError(f"{path}: entry {key!r} is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point():  # numpy has no bfloat16; float32 holds every float dtype
            tensor = tensor.float()
        out[key] = tensor.numpy()
    return out


# --------------------------------------------------------------------------------------
# Name and layout mapping.
# --------------------------------------------------------------------------------------

# nnx leaf name -> torch leaf name. 'kernel' is a conv (rank 4) or a linear (rank 2) weight.
_LEAF_NAMES = {
    "kernel": "weight",
    "scale": "weight",
    "bias": "bias",
    "mean": "running_mean",
    "var": "running_var",
}


def torch_key(path: tuple) -> str:
    """nnx state path -> torch state_dict key.

    ('layer1', 0, 'bn1', 'mean') -> 'layer1.0.bn1.running_mean'.
    """
    *modules, leaf = path
    if leaf not in _LEAF_NAMES:
        raise PortError(f"state path {path}: no torch equivalent for a variable named {leaf!r}")
    return ".".join([*map(str, modules), _LEAF_NAMES[leaf]])


def _to_nnx_layout(leaf: str, array: np.ndarray) -> np.ndarray:
    if leaf == "kernel" and array.ndim == 4:
        return array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if leaf == "kernel" and array.ndim == 2:
        return array.T  # [out, in] -> [in, out]
    return array


def _to_torch_shape(leaf: str, shape: tuple) -> tuple:
    """The torch shape a model variable expects, for error messages in torch's terms."""
    if leaf == "kernel" and len(shape) == 4:
        h, w, i, o = shape
        return (o, i, h, w)
    if leaf == "kernel" and len(shape) == 2:
        return tuple(reversed(shape))
    return tuple(shape)


def _fit_error(source: str, missing, unexpected, mismatched) -> PortError:
    def listed(items):
        head = ", ".join(items[:_MAX_LISTED])
        return head + (
            f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
        )

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {listed(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {listed(unexpected)}")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatch(es): {listed(mismatched)}")
    hint = ""
    if unexpected and all(k.startswith("module.") for k in unexpected):
        hint = " (keys start with 'module.': strip that DataParallel prefix first)"
    return PortError(
        f"{source} does not fit the model: " + "; ".join(parts) + hint,
        missing=missing,
        unexpected=unexpected,
        mismatched=mismatched,
    )


def torch_to_nnx_state(
    state_dict: Mapping[str, np.ndarray], model: nnx.Module, *, source: str = "state dict"
) -> nnx.State:
    """The nnx.State of `model` (params and batch stats) filled from a torch state dict.

    `model` may be abstract (`nnx.eval_shape`): only its structure, shapes and dtypes are
    read, and it is not modified. Raises one PortError listing every missing key,
    unexpected key and shape mismatch. `num_batches_tracked` entries are ignored.
    """
    state = nnx.state(model)
    values, expected, missing, mismatched = {}, set(), [], []
    for path, var in nnx.to_flat_state(state):
        key = torch_key(path)
        expected.add(key)
        target = var.get_value()
        if key not in state_dict:
            missing.append(key)
            continue
        array = np.asarray(state_dict[key])
        value = _to_nnx_layout(path[-1], array)
        if value.shape != tuple(target.shape):
            want = _to_torch_shape(path[-1], tuple(target.shape))
            mismatched.append(f"{key} {tuple(array.shape)} vs model {want}")
            continue
        values[path] = jnp.asarray(value, dtype=target.dtype)
    unexpected = sorted(
        k for k in state_dict if k not in expected and not k.endswith("num_batches_tracked")
    )
    if missing or unexpected or mismatched:
        raise _fit_error(source, missing, unexpected, mismatched)
    nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(values))
    return state


def port_into(
    model: nnx.Module, state_dict: Mapping[str, np.ndarray], *, source: str = "state dict"
) -> nnx.Module:
    """Loads torch weights into `model` in place and returns it; strict as
    `torch_to_nnx_state`."""
    nnx.update(model, torch_to_nnx_state(state_dict, model, source=source))
    return model


# --------------------------------------------------------------------------------------
# Whole networks.
# --------------------------------------------------------------------------------------


def infer_depth(state_dict: Mapping[str, np.ndarray]) -> int:
    """The torchvision depth (18..152) whose block type and stage sizes the keys show."""
    blocks = [set() for _ in range(4)]
    for key in state_dict:
        if m := re.match(r"layer([1-4])\.(\d+)\.", key):
            blocks[int(m.group(1)) - 1].add(int(m.group(2)))
    sizes = tuple(len(b) for b in blocks)
    bottleneck = "layer1.0.conv3.weight" in state_dict
    for depth, (block, stage_sizes) in STAGE_SIZES.items():
        if stage_sizes == sizes and (block is Bottleneck) == bottleneck:
            return depth
    kind = "Bottleneck" if bottleneck else "BasicBlock"
    raise PortError(
        f"no torchvision ResNet has {kind} stages of {sizes} blocks; pass the backbone explicitly"
    )


def _count(keys, pattern: str) -> int:
    """How many distinct indices N the keys matching `pattern` (with one (\\d+)) show."""
    return len({m.group(1) for k in keys if (m := re.match(pattern, k))})


def infer_backbone(keys, *, source: str = "state dict") -> str:
    """The `encoders.BACKBONES` name whose layout torch-style `keys` show (head or not).

    Only the module structure is read (names, block counts); shapes are checked when the
    weights are ported, strictly.
    """
    keys = set(keys)
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return f"resnet{infer_depth(keys)}"
    if "features.0.0.weight" in keys:
        n = _count(keys, r"features\.(\d+)\.")
        if n == 19:
            return "mobilenet_v2"
        raise PortError(f"{source}: a MobileNetV2-like layout with {n} feature layers; only "
                        "torchvision's mobilenet_v2 (19) is supported")
    if "_conv_stem.weight" in keys:
        if any("._se_reduce." in k for k in keys):
            raise PortError(f"{source}: an EfficientNet with squeeze-excitation (B0..B7); "
                            "only EfficientNet-Lite0 is supported")
        n = _count(keys, r"_blocks\.(\d+)\.")
        if n == 16:
            return "efficientnet_lite0"
        raise PortError(f"{source}: an EfficientNet-Lite with {n} blocks; only Lite0 (16) is "
                        "supported")
    first = ", ".join(sorted(keys)[:3])
    raise PortError(f"{source}: no supported network has these keys (first: {first}); "
                    f"supported: {', '.join(encoders.BACKBONES)}")


def network_from_state_dict(
    state_dict: Mapping[str, np.ndarray],
    backbone: str | None = None,
    *,
    include_head: bool = True,
    source: str = "state dict",
) -> nnx.Module:
    """The `backbone` network holding the given torch weights, in eval mode.

    backbone None infers it from the keys. With `include_head=False`, or when the state dict
    has no head, the head is dropped (an encoder); otherwise num_classes comes from the
    head's last layer. The module is built abstractly (`nnx.eval_shape`) and every variable
    is filled from the state dict, so no random initialisation is spent on it.
    """
    backbone = infer_backbone(state_dict, source=source) if backbone is None else backbone
    head_names = encoders.encoder_class(backbone).head_names  # the last is the final Linear
    head_keys = [k for k in state_dict if k.split(".")[0] in head_names]
    logits_bias = [k for k in head_keys if k.split(".")[0] == head_names[-1]
                   and k.endswith(".bias")]
    num_classes = (int(np.shape(state_dict[logits_bias[0]])[0])
                   if include_head and logits_bias else None)
    if num_classes is None:
        state_dict = {k: v for k, v in state_dict.items() if k not in head_keys}
    model = nnx.eval_shape(lambda: encoders.build(backbone, num_classes, rngs=nnx.Rngs(0)))
    port_into(model, state_dict, source=source)
    model.eval()
    return model


# --------------------------------------------------------------------------------------
# The encoder checkpoint (Orbax).
# --------------------------------------------------------------------------------------


def save_encoder_checkpoint(model: nnx.Module, out_dir: str, *,
                            include_head: bool = False) -> str:
    """Writes params and batch stats of `model` to a new Orbax checkpoint at `out_dir`.

    The classification head (`head_names` of the model's class) is left out unless
    `include_head`: the generator's encoder has none. Returns the absolute path written.
    Refuses to overwrite an existing path.
    """
    import orbax.checkpoint as ocp

    out_dir = os.path.abspath(os.fspath(out_dir))  # Orbax requires absolute paths
    if os.path.exists(out_dir):
        raise PortError(f"{out_dir}: already exists; choose a new output directory")
    pure = nnx.to_pure_dict(nnx.state(model))
    if not include_head:
        for name in getattr(type(model), "head_names", ()):
            pure.pop(name, None)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(out_dir, pure)
        checkpointer.wait_until_finished()
    return out_dir


def _recognised(torch_keys) -> str | None:
    try:
        return infer_backbone(torch_keys)
    except PortError:
        return None  # a reduced test network, say: the key-by-key report says what differs


def _check_same_backbone(path: str, saved_paths, model_paths) -> None:
    """One clear error when the checkpoint holds another backbone than the model's, instead
    of hundreds of missing and unexpected keys."""
    saved = _recognised(torch_key(p) for p in saved_paths)
    wanted = _recognised(torch_key(p) for p in model_paths)
    if saved and wanted and saved != wanted:
        raise PortError(f"{path}: holds a {saved} encoder but the model's encoder is {wanted} "
                        f"(config.model.backbone); port {wanted} weights or set the backbone "
                        f"to {saved}")


def load_encoder_checkpoint(path: str, model: nnx.Module) -> nnx.Module:
    """Restores a `save_encoder_checkpoint` checkpoint into `model` (any encoder module, e.g.
    the generator's `encoder`) in place; returns it.

    Every variable of `model` must be in the checkpoint with its shape. A checkpoint head
    the model lacks is ignored (a classifier checkpoint can feed an encoder); anything else
    extra is an error, so a checkpoint of another backbone or depth never half-loads.
    """
    import orbax.checkpoint as ocp

    path = os.path.abspath(os.fspath(path))
    head_names = getattr(type(model), "head_names", ())
    with ocp.StandardCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(path) if os.path.isdir(path) else None
        if metadata is None or metadata.item_metadata is None:
            raise PortError(
                f"{path}: not an Orbax checkpoint; write one with `jaxcolor port`"
            )
        saved = metadata.item_metadata.tree
        saved_flat = traverse_util.flatten_dict(saved)  # paths of str, ArrayMetadata leaves

        state = nnx.state(model)
        wanted = {tuple(map(str, p)): (p, v.get_value()) for p, v in nnx.to_flat_state(state)}
        _check_same_backbone(path, saved_flat, wanted)
        missing = sorted(".".join(k) for k in wanted if k not in saved_flat)
        unexpected = sorted(".".join(k) for k in saved_flat
                            if k not in wanted and k[0] not in head_names)
        mismatched = [
            f"{'.'.join(k)} {tuple(saved_flat[k].shape)} vs model {tuple(t.shape)}"
            for k, (_, t) in wanted.items()
            if k in saved_flat and tuple(saved_flat[k].shape) != tuple(t.shape)
        ]
        if missing or unexpected or mismatched:
            raise _fit_error(path, missing, unexpected, mismatched)

        # Restore onto this host's default device: the saved sharding may name a device
        # this machine lacks (a checkpoint converted on a GPU host, read on a CPU one).
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved
        )
        restored = traverse_util.flatten_dict(checkpointer.restore(path, target))
    values = {p: jnp.asarray(restored[k], dtype=t.dtype) for k, (p, t) in wanted.items()}
    nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(values))
    nnx.update(model, state)
    return model
