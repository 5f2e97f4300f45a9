"""Reading delimited text files written by any tool: manifests and label files.

Spreadsheets and tools on other systems write `;`-separated (European locales), tab-separated or
`|`-separated files, with a UTF-8 byte order mark and CRLF line ends. The delimiter is detected with
the standard library's `csv.Sniffer`, restricted to `, ; <tab> |`, on a sample of the lines that are
not comments (`#`) or blank; when the sniffer cannot decide, the most frequent candidate of the first
such line wins, and a file with none of them is a single column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from picsift.data.storage import is_remote, read_bytes
from picsift.errors import DatasetError

DELIMITERS = ",;\t|"
_NAMES = {",": "','", ";": "';'", "\t": "a tab", "|": "'|'"}
_SAMPLE_LINES = 50


def read_utf8_text(path: Path | str) -> str:
    """The text of `path` (a local file, or a URL read through `picsift.data.storage`) decoded as UTF-8,
    without a leading byte order mark.

    Raises DatasetError naming the file, or the file and line of the first byte that is not UTF-8;
    StorageError (a DatasetError) when a URL cannot be read.
    """
    try:
        data = read_bytes(path) if isinstance(path, str) and is_remote(path) else Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DatasetError(f"{path} line {line}: not UTF-8 text (save the file as UTF-8)") from e


def delimiter_name(delimiter: str) -> str:
    """How a delimiter reads in a message: `';'`, `a tab`."""
    return _NAMES.get(delimiter, repr(delimiter))


def _content_lines(text: str) -> list[str]:
    lines = []
    for line in io.StringIO(text, newline=None):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append(line.rstrip("\r\n"))
            if len(lines) >= _SAMPLE_LINES:
                break
    return lines


def sniff_delimiter(text: str) -> str:
    """The delimiter of `text`, one of `DELIMITERS` (`,` for a single-column file)."""
    lines = _content_lines(text)
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in DELIMITERS}
        best = max(DELIMITERS, key=lambda d: counts[d])
        return best if counts[best] else ","


@dataclass(frozen=True)
class Row:
    """One row of a delimited file: its line number and its cells."""

    line: int  # 1-based line number of the row's first line in the file
    cells: list[str]  # stripped of surrounding white space


def read_rows(text: str, name: str, delimiter: str | None = None) -> Iterator[Row]:
    """Rows of delimited `text` (see the module docstring), skipping blank and `#` comment lines.

    `name` is used in errors: a malformed row (an unclosed quote) raises DatasetError
    "`name` line N: malformed CSV (...)".
    """
    delimiter = delimiter or sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        start = reader.line_num + 1
        try:
            raw = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DatasetError(f"{name} line {reader.line_num}: malformed CSV ({e})") from e
        cells = [c.strip() for c in raw]
        if not any(cells) or cells[0].startswith("#"):
            continue
        yield Row(start, cells)


def column_count_error(name: str, row: Row, header: list[str], delimiter: str) -> str:
    """`labels.csv line 4: expected 2 columns (path, label) separated by ';', found 1`."""
    return (
        f"{name} line {row.line}: expected {len(header)} columns ({', '.join(header)}) "
        f"separated by {delimiter_name(delimiter)}, found {len(row.cells)}"
    )
