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
from picsift.errors import DatasetError, LabelError

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
    """One row of a delimited file: its line numbers and its cells."""

    line: int  # 1-based line number of the row's first line in the file
    cells: list[str]  # stripped of surrounding white space
    end: int = 0  # 1-based line number of its last line: beyond `line` only when a quoted field holds a line break


class _PhysicalLines:
    """The lines of a text for `csv.reader`, numbered, with the blank and `#` comment lines between rows left out
    (a comment's quote cannot swallow the rows after it). Set `at_row_start` before each row is read; `start`
    and `end` are then the numbers of the row's first and last lines, `first` its first line."""

    def __init__(self, text: str) -> None:
        self._lines = io.StringIO(text, newline="")  # split at \n, \r\n and \r, line ends kept (as csv wants)
        self.number = self.start = self.end = 0
        self.first = ""
        self.at_row_start = True

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        while True:
            line = next(self._lines)
            self.number += 1
            if self.at_row_start:
                stripped = line.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                self.at_row_start, self.start, self.first = False, self.number, line
            self.end = self.number
            return line


def _quoting_error(name: str, lines: _PhysicalLines, error: csv.Error | None) -> str:
    """`bad.csv line 3: unclosed quote: ...` for a quoted field not closed on its line; `malformed quoting` for
    text after a closing quote (`"cat"s`) and other quoting the csv module refuses in strict mode."""
    shown = repr(lines.first.rstrip("\r\n")[:80])
    at_end = error is not None and "unexpected end of data" in str(error)
    if lines.end > lines.start or at_end:
        if lines.end > lines.start:
            runs = f"the end of the file, line {lines.end}" if at_end else f"line {lines.start + 1}"
            how = f"is not closed on its line: it runs on to {runs}"
        else:
            how = "is not closed before the end of the file"
        return (
            f"{name} line {lines.start}: unclosed quote: a quoted field {how} (the line reads {shown}); "
            "close the quote on the same line (a path or label cannot hold a line break)"
        )
    return (
        f"{name} line {lines.end}: malformed quoting ({error}) in {shown}; quote a whole field "
        '("air,plane") and double a quote inside one ("a ""b"" c")'
    )


def read_rows(text: str, name: str, delimiter: str | None = None, *, multiline: bool = False) -> Iterator[Row]:
    """Rows of delimited `text` (see the module docstring), skipping blank and `#` comment lines.

    Quoting follows RFC 4180, strictly: a field that starts with `"` ends with `"` followed by the delimiter or
    the line end. `name` is used in errors, which are DatasetError naming the file and line: a quoted field
    not closed on its line ("`name` line 3: unclosed quote: ..."; with `multiline`, only one not closed before
    the end of the file: the caller then checks that its paths and labels hold no line break) and text after a
    closing quote ("`name` line 3: malformed quoting ...").
    """
    delimiter = delimiter or sniff_delimiter(text)
    lines = _PhysicalLines(text)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:
        lines.at_row_start = True
        try:
            raw = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DatasetError(_quoting_error(name, lines, e)) from e
        if lines.end > lines.start and not multiline:
            raise DatasetError(_quoting_error(name, lines, None))
        cells = [c.strip() for c in raw]
        if any(cells):
            yield Row(lines.start, cells, lines.end)


def line_break_error(name: str, row: Row, column: str) -> str:
    """The error for a row (read with `multiline`) whose `column` cell, a path or a label, holds a line break."""
    return (
        f"{name} line {row.line}: the {column} field runs on to line {row.end} (an unclosed quote?); "
        f"a path or label cannot hold a line break"
    )


def column_count_error(name: str, row: Row, header: list[str], delimiter: str) -> str:
    """`labels.csv line 4: expected 2 columns (path, label) separated by ';', found 1`."""
    return (
        f"{name} line {row.line}: expected {len(header)} columns ({', '.join(header)}) "
        f"separated by {delimiter_name(delimiter)}, found {len(row.cells)}"
    )


def single_line(text: str, what: str = "a label") -> str:
    """`text` itself when no line break (any of `str.splitlines`' separators) is inside it; else LabelError
    "a label cannot hold a line break (got ...)": a path or class name is one line, and one that spans two is
    a mistake, such as a quote left open in a CSV file."""
    if len(text.strip().splitlines()) > 1:
        raise LabelError(f"{what} cannot hold a line break (got {text[:60]!r})")
    return text
