"""`--shard I/N`: every input in exactly one shard, whatever else is listed."""

import pytest

from jaxcolor.errors import UsageError
from jaxcolor.inference.shards import Shard

KEYS = [f"scans/box{b}/photo_{i:04d}" for b in range(5) for i in range(400)]


def test_shards_partition_the_inputs_and_stay_balanced():
    count = 7
    owners = [[i for i in range(count) if Shard(i, count).owns(k)] for k in KEYS]
    assert all(len(o) == 1 for o in owners)  # exactly one shard each: no overlap, no gap
    sizes = [sum(o == [i] for o in owners) for i in range(count)]
    assert min(sizes) > 0.8 * len(KEYS) / count and max(sizes) < 1.2 * len(KEYS) / count


def test_an_inputs_shard_does_not_depend_on_the_other_inputs():
    shard = Shard(2, 5)
    mine = {k for k in KEYS if shard.owns(k)}
    fewer = {k for k in KEYS[::3] if shard.owns(k)}
    assert fewer == mine & set(KEYS[::3])


@pytest.mark.parametrize("spec", ["3", "3/3", "-1/4", "a/b", "1/0", "1 of 4"])
def test_a_bad_shard_is_a_usage_error_naming_the_flag(spec):
    with pytest.raises(UsageError, match="--shard"):
        Shard.parse(spec)


def test_parse():
    assert Shard.parse("0/1").whole and Shard.parse(None) == Shard(0, 1)
    assert Shard.parse(" 3/10 ") == Shard(3, 10) and str(Shard(3, 10)) == "3/10"
