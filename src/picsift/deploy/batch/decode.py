"""The producer side of batch prediction: input paths -> decoded batches, in worker processes.

`DecodedBatches` is a torch IterableDataset. The input order is cut into shards of `shard_size` paths and each
shard into batches of `batch_size`; the batches of the shards still to write are numbered 0, 1, 2, ... and
worker w of n decodes batches w, w + n, w + 2n, ... Each worker enumerates the inputs itself (a walk is cheap
beside decoding), so no list of every path is ever built or sent. torch's DataLoader returns the workers'
batches in turn, which is this numbering: the consumer receives them in input order, whatever the number of
workers (it checks that it does).

Each batch carries its paths, the uint8 pixels (M, S, S, 3) of the files that decoded (`resize_square(load_rgb(
...))`, as every picsift predictor decodes) and, per path, why it did not decode ("" when it did).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from picsift.data.images import load_rgb, resize_square
from picsift.data.input_stream import iter_inputs, open_input
from picsift.errors import ImageDecodeError


def shards_of(paths: Iterator[str], shard_size: int) -> Iterator[list[str]]:
    """Consecutive lists of `shard_size` paths (the last may be shorter)."""
    while chunk := list(itertools.islice(paths, shard_size)):
        yield chunk


def decode_error(e: BaseException) -> str:
    """The error column's text for a file that did not decode: picsift's own message, else the exception's."""
    if isinstance(e, ImageDecodeError):
        return str(e) or "cannot decode"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def decode_paths(paths: Sequence[str], size: int) -> tuple[np.ndarray, list[str]]:
    """Decode files to uint8 (M, size, size, 3), M the number that decoded, and the error per path ("" if none).
    Never raises for one bad file: a batch of millions of files must not stop on one."""
    pixels, errors = [], []
    for path in paths:
        try:
            pixels.append(resize_square(load_rgb(open_input(path)), size))
            errors.append("")
        except Exception as e:  # noqa: BLE001 - any failure of one file is that file's row, never the job's end
            errors.append(decode_error(e))
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), np.uint8)
    return stacked, errors


class DecodedBatches(IterableDataset):
    """Decoded batches of the inputs' pending shards (see the module notes), each a dict: shard, batch (its
    number within the shard), last (the shard's last batch), paths, pixels (M, S, S, 3), errors."""

    def __init__(
        self,
        sources: Sequence[str],
        files_from: Sequence[str | Path],
        *,
        shard_size: int,
        batch_size: int,
        pending: frozenset[int],
        size: int,
    ) -> None:
        self.sources = list(sources)
        self.files_from = [str(f) for f in files_from]
        self.shard_size = shard_size
        self.batch_size = batch_size
        self.pending = pending
        self.size = size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        number = 0  # of the batch among the pending shards' batches
        paths = iter_inputs(self.sources, self.files_from)
        for shard, chunk in enumerate(shards_of(paths, self.shard_size)):
            if shard not in self.pending:
                continue
            starts = range(0, len(chunk), self.batch_size)
            for batch, start in enumerate(starts):
                if number % workers == worker:
                    part = chunk[start : start + self.batch_size]
                    pixels, errors = decode_paths(part, self.size)
                    last = batch == len(starts) - 1
                    yield {
                        "shard": shard,
                        "batch": batch,
                        "last": last,
                        "paths": part,
                        "pixels": pixels,
                        "errors": errors,
                    }
                number += 1
