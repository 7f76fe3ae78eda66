"""Input-pipeline throughput beside the physical limit of reading the same records.

    python -m benchmarks.input_pipeline --synthetic 5000 --size 224 --batch 64 --crop 224
    python -m benchmarks.input_pipeline --records /data/records --workers 2

Prints one JSON line: images/s delivered by `jaxcolor.data.pipeline.make_train_iterator`
(filter, shuffle, sorted batch read, random crop, flip, read-ahead) and, as `baseline`, the
images/s of a plain numpy loop over the shards' memmaps doing one sorted fancy-index read per
random batch — the practical limit of any pipeline on this storage. `ratio` = value / baseline.
Each figure is the median of `--windows` windows of `--batches` batches, page cache warm.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import common, tables

AREA = "input_pipeline"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--records", help="an existing records directory")
    src.add_argument("--synthetic", type=int, metavar="N",
                     help="write N random records to a temporary directory and use them")
    p.add_argument("--size", type=int, default=224, help="image size of --synthetic records")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--no-flip", dest="flip", action="store_false")
    p.add_argument("--workers", type=int, default=0, help="Grain worker processes")
    p.add_argument("--read-threads", type=int, default=2)
    p.add_argument("--prefetch", type=int, default=4)
    p.add_argument("--batches", type=int, default=50, help="batches per timed window")
    common.add_output_args(p, AREA)
    tables.add_args(p, AREA, TABLES)
    return p.parse_args(argv)


def write_synthetic(directory: Path, count: int, size: int, chunk: int = 256) -> Path:
    """Random uint8 records (colourful noise: every filter rule keeps them)."""
    from jaxcolor.data.records import RecordsWriter

    rng = np.random.default_rng(0)
    with RecordsWriter(directory, size, size, source={"synthetic": count}) as writer:
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            writer.add(rng.integers(0, 256, (n, size, size), np.uint8),
                       rng.integers(0, 256, (n, size, size, 2), np.uint8))
    return directory


class MemmapBatches:
    """The baseline: random batches read straight from the shard memmaps, one sorted
    fancy-index read per shard, no Grain, no shuffling bookkeeping, no augmentation."""

    def __init__(self, directory: Path, manifest, batch: int, seed: int = 0):
        self.shards = [(np.load(directory / s["L"], mmap_mode="r"),
                        np.load(directory / s["ab"], mmap_mode="r")) for s in manifest.shards]
        self.offsets = np.cumsum([0] + [s["count"] for s in manifest.shards])
        self.batch = batch
        self.rng = np.random.default_rng(seed)

    def warm_page_cache(self) -> None:
        for L, ab in self.shards:
            for start in range(0, len(L), 1024):
                np.array(L[start:start + 1024]), np.array(ab[start:start + 1024])

    def next(self) -> list[tuple[np.ndarray, np.ndarray]]:
        idx = np.sort(self.rng.choice(self.offsets[-1], self.batch, replace=False))
        shard_of = np.searchsorted(self.offsets, idx, side="right") - 1
        out = []
        for shard in np.unique(shard_of):
            local = idx[shard_of == shard] - self.offsets[shard]
            L, ab = self.shards[shard]
            out.append((L[local], ab[local]))
        return out


def cpu_table(path: str) -> str:
    """Grain pipeline images/s beside the memmap read limit on a CPU-only machine: the newest
    line per (stored size, crop, batch, Grain workers), by crop and batch."""
    def key(line):
        config = line["config"]
        return (line["resolution"], line["batch"], config["stored_size"][0],
                config["workers"]) if tables.on_quiet_cpu(line) else None

    rows = [[f"{stored} px ({crop}, {batch})" + (f", {workers} workers" if workers else ""),
             tables.num(r["value"]), tables.num(r["baseline"]), f"{r['ratio']:.2f}"]
            for (crop, batch, stored, workers), r in sorted(
                tables.newest(tables.read(path), key).items())]
    return tables.markdown(["Records (crop, batch)", "Grain pipeline images/s",
                            "raw memmap read limit", "ratio"], rows)


TABLES = {"cpu": cpu_table}


def main(argv=None) -> dict | None:
    if tables.requested(argv, AREA, TABLES):
        return None
    args = _parse(argv)
    from jaxcolor.data import pipeline
    from jaxcolor.data.records import Records

    with contextlib.ExitStack() as stack:
        if args.synthetic:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            directory = write_synthetic(tmp / "records", args.synthetic, args.size)
        else:
            directory = Path(args.records)
        records = Records(directory)

        baseline = MemmapBatches(directory, records.manifest, args.batch)
        baseline.warm_page_cache()
        baseline.next()

        def baseline_window() -> int:
            for _ in range(args.batches):
                baseline.next()
            return args.batches * args.batch

        base_rate, base_rates = common.median_rate(baseline_window, args.windows)

        it, info = pipeline.make_train_iterator(
            records, global_batch=args.batch, crop_size=args.crop, flip=args.flip, seed=0,
            shard_index=0, shard_count=1, num_workers=args.workers,
            read_threads=args.read_threads, prefetch=args.prefetch)
        stack.callback(it.close)
        for _ in range(max(3, 2 * args.workers)):  # start-up: workers, first reads
            next(it)

        def pipeline_window() -> int:
            for _ in range(args.batches):
                next(it)
            return args.batches * args.batch

        rate, rates = common.median_rate(pipeline_window, args.windows)

    result = common.make_result(
        "input_pipeline", round(rate, 1), "images/s", batch=args.batch, resolution=args.crop,
        baseline=round(base_rate, 1), ratio=round(rate / base_rate, 3),
        windows={"pipeline": [round(r, 1) for r in rates],
                 "baseline": [round(r, 1) for r in base_rates]},
        config={"records": "synthetic" if args.synthetic else str(directory),
                "count": len(records), "kept": info.kept, "stored_size": list(records.image_size),
                "flip": args.flip, "workers": args.workers, "read_threads": args.read_threads,
                "prefetch": args.prefetch, "batches_per_window": args.batches})
    common.emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
