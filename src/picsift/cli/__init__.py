"""`picsift` command line: a thin layer over the Python API. Each stage registers its own commands."""

from __future__ import annotations

import logging

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


def main() -> None:
    """Entry point of the `picsift` command: log warnings to stderr (under torchrun, on rank 0; the other processes
    log errors only) and run the app."""
    from picsift.api import process_rank

    level = logging.WARNING if process_rank() == 0 else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    build_app()()
