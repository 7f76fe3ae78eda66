"""A folder of films: every film under `--input`, each coloured as `jaxcolor video` colours
one, into the same relative path under `--output` (a folder).

What a film archive needs beyond one film: the films of a folder listed once, in one order
(sorted by path), one machine's share of them (`--shard I/N`, by a hash of each film's path
below the folder), a rerun that skips finished films and resumes the one a kill interrupted
(each film is its own resumable run, `film.colorize_video`), and a film that cannot be read
reported with its reason while the others go on (exit status 1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from jaxcolor.errors import JaxcolorError, UsageError
from jaxcolor.inference.colorizer import Colorizer
from jaxcolor.inference.shards import Shard
from jaxcolor.inference.video import film, sources

FILM_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts",
                 ".wmv", ".flv", ".ogv", ".3gp")
"""What counts as a film in a folder (anything else is ignored there)."""


def find_films(directory: Path) -> list[Path]:
    """The films under `directory` (recursive, hidden files skipped), sorted by path."""
    return sorted((p for p in directory.rglob("*") if p.is_file()
                   and p.suffix.lower() in FILM_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(directory).parts)),
                  key=lambda p: p.relative_to(directory).as_posix())


def output_for(film_path: Path, directory: Path, output: Path, codec_name: str) -> Path:
    """Where a film of the folder goes: its relative path under `output`, in its own
    container when jaxcolor writes it (.mp4, .mov, .mkv), else .mp4 (FFV1: .mkv)."""
    rel = film_path.relative_to(directory)
    suffix = ".mkv" if codec_name == "ffv1" else (
        rel.suffix.lower() if rel.suffix.lower() in (".mp4", ".mov", ".mkv") else ".mp4")
    return output / rel.with_suffix(suffix)


def check_hint_names(directory: Path, hints: dict, source: str) -> None:
    """Refuse, before any work, hints for a film the folder does not hold."""
    names = {p.relative_to(directory).as_posix() for p in find_films(directory)}
    unknown = sorted(set(hints) - names)
    if unknown:
        from jaxcolor.inference.hints import HintError

        raise HintError(f"{source}: {unknown[0]!r} is not a film of {directory} (keys are "
                        "paths relative to --input)")


@dataclasses.dataclass
class ArchiveReport:
    done: list[tuple[Path, film.Report]] = dataclasses.field(default_factory=list)
    skipped: list[Path] = dataclasses.field(default_factory=list)  # finished before
    failed: list[tuple[Path, str]] = dataclasses.field(default_factory=list)


def colorize_films(colorizer: Colorizer, directory: Path, output: Path,
                   settings: film.Settings, *, shard: Shard = Shard(),
                   workers: int | None = None, overwrite: bool = False,
                   progress: Callable[[Path], Callable[[int, int], None]] = lambda path: (
                       lambda done, total: None), hints: dict | None = None) -> ArchiveReport:
    """Colourise `shard`'s share of the films under `directory` into `output` (a folder);
    `progress(film)` gives each film's progress callback; `hints` maps a film's path below
    `directory` to its hints (`check_hint_names` first)."""
    if output.suffix:
        raise UsageError(f"--output {output}: a folder of films needs a folder (a path without "
                         "a suffix) for the coloured films")
    films = [p for p in find_films(directory)
             if shard.owns(p.relative_to(directory).as_posix())]
    report = ArchiveReport()
    for path in films:
        out = output_for(path, directory, output, settings.codec.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        mine = tuple((hints or {}).get(path.relative_to(directory).as_posix(), ()))
        try:
            done = film.colorize_video(colorizer, sources.video_source(path), out,
                                       dataclasses.replace(settings, hints=mine),
                                       workers=workers, overwrite=overwrite,
                                       progress=progress(path))
        except JaxcolorError as e:  # this film only: a damaged or unreadable file
            report.failed.append((path, str(e)))
            continue
        if done.skipped:
            report.skipped.append(path)
        else:
            report.done.append((path, done))
    return report
