"""How a studio serves: `Settings`, and the defaults of `jaxcolor serve`'s flags.

Kept apart from the application so the command's help can show the defaults without
importing Starlette (an optional dependency: `pip install 'jaxcolor[serve]'`).
"""

from __future__ import annotations

import dataclasses
import os

DEFAULT_MAX_BYTES = 2**27  # 128 MiB: a 16-bit TIFF scan of ~40 MP
DEFAULT_MAX_PIXELS = 2**25  # ~33 MP: an 8000 x 4000 photo, or a 600 dpi scan of 8 x 10"
DEFAULT_QUEUE = 8


@dataclasses.dataclass(frozen=True)
class Settings:
    """Memory stays under about `queue` x `max_pixels` x 12 bytes of photos (the decoded
    input, the output, its encoding) besides the model, whatever the load."""

    host: str = "127.0.0.1"  # the address bound: decides the Host check (`guard`)
    token: str | None = None  # None: no token checked (loopback only, `guard.resolve_token`)
    max_bytes: int = DEFAULT_MAX_BYTES  # largest request body
    max_pixels: int = DEFAULT_MAX_PIXELS  # largest photo, width x height
    queue: int = DEFAULT_QUEUE  # requests served at once; beyond: 503
    workers: int = os.cpu_count() or 1  # host threads decoding, composing and encoding
