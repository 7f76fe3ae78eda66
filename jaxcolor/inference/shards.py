"""One archive across many machines: `--shard I/N` takes this machine's share of the inputs.

A user with ten machines and ten million photos starts one command per machine under their
scheduler (a SLURM array, a Kubernetes indexed job, Ray tasks), each with its own I and the
same N. Every input belongs to exactly one shard, decided by a hash of its path relative to
the input (or of its index in a stack): the partition does not depend on which machine lists
the files, in which order, or on which other files it sees, so shards never overlap and
their union is the whole archive, even when files arrive between the starts of the tasks
(a rerun of a shard then picks up its newcomers, and skips what it already wrote).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

from jaxcolor.errors import UsageError

_SPEC = re.compile(r"^(\d+)/(\d+)$")


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based: `--shard=$SLURM_ARRAY_TASK_ID/10` with
    `--array=0-9`)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, spec: str | None) -> "Shard":
        """"I/N" -> Shard(I, N); None -> the whole archive."""
        if spec is None:
            return cls()
        match = _SPEC.match(spec.strip())
        if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
            raise UsageError(f"--shard {spec!r}: expected I/N with 0 <= I < N, e.g. --shard=3/10 "
                             "(0-based, as SLURM array and Kubernetes job indices)")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def whole(self) -> bool:
        return self.count == 1

    def owns(self, key: str) -> bool:
        """Whether the input named `key` (its path relative to the input, with / separators)
        is this shard's."""
        if self.whole:
            return True
        digest = hashlib.sha1(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
