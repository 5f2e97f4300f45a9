"""`picsift` command line: a thin layer over the Python API. Each stage registers its own commands."""

from __future__ import annotations

import logging
from typing import Annotated

import typer


def build_app() -> typer.Typer:
    """The `picsift` Typer app with every stage's commands registered."""
    app = typer.Typer(
        name="picsift",
        help="Build your own image classifier from a folder of pictures, and serve it.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_global_options)
    from picsift.cli import ingest_cmd, train_cmd

    ingest_cmd.register(app)
    train_cmd.register(app)
    from picsift.cli import improve_cmd

    improve_cmd.register(app)
    from picsift.cli import label_cmd

    label_cmd.register(app)
    from picsift.cli import evaluate_cmd

    evaluate_cmd.register(app)
    from picsift.cli import deploy_cmd

    deploy_cmd.register(app)
    from picsift.cli import features_cmd

    features_cmd.register(app)
    from picsift.cli import curate_cmd

    curate_cmd.register(app)
    return app


def _global_options(
    storage_option: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-option",
            metavar="KEY=VALUE",
            help="An option of the object-storage file system for s3://, gs://, az:// URLs (repeatable), e.g. "
            "anon=true or endpoint_url=http://localhost:9000; the value is read as JSON when it is JSON. "
            "For every command at once: $PICSIFT_STORAGE_OPTIONS (a JSON object).",
        ),
    ] = None,
) -> None:
    """Build your own image classifier from a folder of pictures, and serve it."""
    if storage_option:
        from picsift import api
        from picsift.cli.common import handle_errors

        handle_errors(api.set_storage_options)(storage_option)


def main() -> None:
    """Entry point of the `picsift` command: log warnings to stderr (under torchrun, on rank 0; the other processes
    log errors only) and run the app."""
    from picsift.api import process_rank

    level = logging.WARNING if process_rank() == 0 else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    build_app()()
