"""What to predict: files, folders and glob patterns -> the image files, and what was skipped with why."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from picsift.data.formats import describe
from picsift.data.storage import is_remote, iter_remote_images
from picsift.data.walk import SkippedFile, WalkResult, count_by_kind, walk_images
from picsift.errors import DatasetError


@dataclass
class InputFiles:
    """The files to predict, in order, and what the folders and patterns held that is not an image
    (hidden files, other suffixes, broken links, link loops), each with why."""

    paths: list[str]
    skipped: list[SkippedFile]


def _skipped_note(skipped: list[SkippedFile]) -> str:
    if not skipped:
        return ""
    kinds = ", ".join(f"{kind} {n}" for kind, n in count_by_kind(skipped).items())
    return f"; skipped {len(skipped)}: {kinds}"


def collect_inputs(inputs: list[str]) -> InputFiles:
    """Files, folders and glob patterns -> the image files to predict, and what was skipped.

    Folders (and the folders and files a pattern matches) are walked by `picsift.data.walk`, the same
    walk `picsift import` uses: the same formats, hidden folders left out, links followed with loop
    protection. An existing path is taken literally even if its name holds glob characters
    (`photo[1].jpg`), and a file named explicitly is always predicted (a bad one is reported per
    file). A folder or pattern that yields no image is a DatasetError, so a typo never passes as
    "0 predictions". A path that does not exist is kept: the predictor reports it ("no such file").
    A URL (`s3://bucket/photos/`, `gs://...`, `https://...`) is one object, or a prefix walked by the same
    rules (`picsift.data.storage.iter_remote_images`); a missing prefix or bucket is a StorageError.
    """
    out = InputFiles([], [])
    for item in inputs:
        if is_remote(item):
            out.paths += iter_remote_images(item, lambda url, why: out.skipped.append(SkippedFile(url, why)))
            continue
        p = Path(item)
        if p.is_dir():
            found = walk_images(p)
            out.skipped += found.skipped
            if not found.images:
                raise DatasetError(
                    f"folder {item!r} holds no image files (looked for {describe()}, recursively)"
                    + _skipped_note(found.skipped)
                )
            out.paths += [str(f) for f in found.images]
        elif p.exists() or not any(ch in item for ch in "*?["):
            out.paths.append(item)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise DatasetError(f"pattern {item!r} matched no files")
            found = WalkResult()
            for m in matches:
                found.extend(walk_images(Path(m)))
            out.skipped += found.skipped
            images = list(dict.fromkeys(str(f) for f in found.images))  # `**` matches a folder and its files
            if not images:
                raise DatasetError(f"pattern {item!r} matched no image files" + _skipped_note(found.skipped))
            out.paths += images
    return out


def expand_inputs(inputs: list[str]) -> list[str]:
    """The image files `collect_inputs` finds, without the skipped ones."""
    return collect_inputs(inputs).paths
