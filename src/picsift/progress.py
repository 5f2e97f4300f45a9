"""Rich progress bars for long work. Off by default in the library; the CLI switches them on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
_enabled: ContextVar[bool] = ContextVar("picsift_progress", default=False)
_console = Console(stderr=True)


def enable(on: bool = True) -> None:
    """Turn progress bars on (or off with on=False) in the current context."""
    _enabled.set(on)


def enabled() -> bool:
    """True when progress bars are on in the current context."""
    return _enabled.get()


def make_progress() -> Progress:
    """A rich Progress on stderr (description, bar, count, info, elapsed, remaining); disabled when progress
    is off."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_console,
        transient=False,
        disable=not enabled(),
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar when progress is enabled."""
    if not enabled():
        yield from items
        return
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        for item in items:
            yield item
            progress.advance(task)


@contextmanager
def bar(description: str, total: int | None) -> Iterator[tuple[Progress, object]]:
    """A single progress bar: `progress.update(task, advance=1, info="loss 0.3")`."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        yield progress, task
