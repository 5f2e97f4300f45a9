"""Shared CLI plumbing: the workspace option, JSON output and the error -> exit code 2 mapping."""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, overload

import typer
from rich.console import Console
from rich.markup import escape

from picsift.errors import PicsiftError, disk_error
from picsift.jsonio import dumps

if TYPE_CHECKING:
    from picsift.data.available import SkippedImage

F = TypeVar("F", bound=Callable[..., Any])

# Markup off by default: paths, class names and messages print as written (rich would read "[misc]" or "a list
# of [until, size] pairs" as tags and drop them). A line that styles opts in with markup=True and escapes its values.
console = Console(markup=False, soft_wrap=True)  # a long line stays one line (no breaks mid-path or mid-name)
err_console = Console(stderr=True, soft_wrap=True)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default ./picsift-workspace or $PICSIFT_WORKSPACE).",
        envvar="PICSIFT_WORKSPACE",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]
RunOpt = Annotated[str | None, typer.Option("--run", help="Run id or folder (default: the latest run).")]
LabelUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--label-url",
        metavar="URL",
        help="Address of the labelling app the report's image links open, as `picsift label` prints it (with "
        "?token=... when it has one; the report file then holds the token). Default http://127.0.0.1:8765/.",
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Stop (exit 2) when a catalog image is missing on disk or no longer decodes, instead of skipping it.",
    ),
]


def print_json(obj: Any) -> None:
    """Write `obj` to stdout as indented JSON (values JSON does not know as strings)."""
    sys.stdout.write(dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def warn(line: str) -> None:
    """One yellow `warning:` line on stderr (stdout stays clean for --json)."""
    err_console.print(f"[bold yellow]warning:[/] {escape(line)}", markup=True, highlight=False, soft_wrap=True)


def warn_skipped(skipped: Sequence[SkippedImage | dict[str, Any]]) -> None:
    """The one line naming the images a command skipped because their file is missing or no longer decodes
    (SkippedImage objects, or their `to_dict()` form as a result's JSON holds them)."""
    from picsift.data.available import SkippedImage, skipped_message

    if skipped:
        warn(skipped_message([s if isinstance(s, SkippedImage) else SkippedImage(**s) for s in skipped]))


def fmt_metric(value: Any, spec: str = ".4f") -> str:
    """A metric for the terminal: `value` formatted with `spec` (e.g. ".4f", ".1%"), or "n/a" when it was not
    measured (None, or NaN/infinity from an empty set) rather than Python's "nan"."""
    if value is None:
        return "n/a"
    number = float(value)
    return format(number, spec) if math.isfinite(number) else "n/a"


def fmt_bytes(n: float) -> str:
    """A size for the terminal: "512 B", "1.5 MB" (the leaderboard report's spelling)."""
    from picsift.compare import human_bytes

    return human_bytes(n)


def _error_line(e: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False, soft_wrap=True)


INTERRUPTED = "stopped before it finished"  # what Ctrl+C left, for a command that says nothing more precise


def _interrupted_line(e: KeyboardInterrupt, note: str | None) -> None:
    from picsift.errors import Interrupted

    said = e.note if isinstance(e, Interrupted) else note or INTERRUPTED
    err_console.print(f"[bold yellow]interrupted:[/] {escape(said)}", markup=True, highlight=False, soft_wrap=True)


def _exit_now_if_threads_hold_it(code: int) -> None:
    """Exit with `code` at once when worker threads are still running (a download blocked until its timeout, a
    decoding pool): the interpreter would otherwise wait for each of them before it exits, long after Ctrl+C.
    What the main thread had to undo (its `finally` blocks, context managers) has run by now."""
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if busy:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@overload
def handle_errors(fn: F, *, interrupted: str | None = None) -> F: ...


@overload
def handle_errors(fn: None = None, *, interrupted: str | None = None) -> Callable[[F], F]: ...


def handle_errors(fn: F | None = None, *, interrupted: str | None = None) -> F | Callable[[F], F]:
    """Turn picsift's typed errors into one red line on stderr and exit code 2; so too a write that failed for a
    full disk or a read-only file system (`disk_error`), whichever library raised it. Ctrl+C (SIGINT) prints one
    `interrupted: ...` line on stderr and exits 130: what the library said the interruption left (an `Interrupted`
    error's note: a training run kept at epoch N and how to resume it), else the command's own `interrupted`
    note (`@handle_errors(interrupted="the catalog left as it was")`), else that it stopped before it finished.
    Under torchrun, progress bars show on rank 0 only, and an error a process raised only because rank 0 did (and
    reported it) exits 2 quietly; only rank 0 reports an interruption."""
    if fn is None:
        return lambda f: handle_errors(f, interrupted=interrupted)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from picsift import api, progress

        progress.enable(sys.stderr.isatty() and api.process_rank() == 0)
        try:
            return fn(*args, **kwargs)
        except PicsiftError as e:
            if not api.is_relayed_error(e):
                _error_line(e)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt as e:
            if api.process_rank() == 0:
                _interrupted_line(e, interrupted)
            _exit_now_if_threads_hold_it(130)
            raise typer.Exit(code=130) from None
        except Exception as e:
            full = disk_error(e)
            if full is None:
                raise
            _error_line(full)
            raise typer.Exit(code=2) from None

    return wrapper
