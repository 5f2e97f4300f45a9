"""`picsift evaluate`: metrics.json and report.html for a trained run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from picsift import api
from picsift.cli.common import (
    JsonOpt,
    LabelUrlOpt,
    RunOpt,
    StrictOpt,
    WorkspaceOpt,
    console,
    fmt_metric,
    handle_errors,
    print_json,
    warn_skipped,
)


def register(app: typer.Typer) -> None:
    """Add the `evaluate` command to `app`."""
    app.command("evaluate")(evaluate)


@handle_errors(interrupted="the run's evaluation files are as they were (they are written when evaluation ends)")
def evaluate(
    run: RunOpt = None,
    workspace: WorkspaceOpt = None,
    split: Annotated[str, typer.Option(help="auto (test if the run has one, else val) | test | val.")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 256,
    tta: Annotated[bool, typer.Option("--tta", help="Test-time augmentation (the run's chosen views).")] = False,
    strict: StrictOpt = False,
    label_url: LabelUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Score a run (default: the latest) on its held-out images; write metrics.json and report.html."""
    from rich.table import Table

    result = api.evaluate_run(
        workspace=workspace,
        run=run,
        split=split,
        device=device,
        batch_size=batch_size,
        tta=tta,
        strict=strict,
        label_url=label_url,
    )
    warn_skipped(result.skipped_images)
    m = result.metrics
    if json_out:
        print_json(
            {
                **m,
                "run_dir": str(result.run_dir),
                "metrics_path": str(result.metrics_path),
                "report_path": str(result.report_path),
                "predictions_path": str(result.predictions_path),
            }
        )
        return
    table = Table("class", "precision", "recall", "F1", "support", title=f"{result.run_id} on the {result.split} split")
    for name, c in m["per_class"].items():
        table.add_row(name, *(fmt_metric(c[k], ".3f") for k in ("precision", "recall", "f1")), str(c["support"]))
    table.add_section()
    for key in ("macro_avg", "weighted_avg"):
        a = m[key]
        table.add_row(
            Text(key.replace("_", " "), style="bold"),
            *(fmt_metric(a[k], ".3f") for k in ("precision", "recall", "f1")),
            str(a["support"]),
        )
    console.print(table)
    top = "  ".join(f"top-{k} {fmt_metric(v)}" for k, v in m["top_k_accuracy"].items() if k != "1")
    n_skipped = sum(v["count"] for v in result.skipped.values())
    console.print(
        f"split: [bold]{result.split}[/] ({result.split_reason}), {result.n_images} images scored"
        + (f", {n_skipped} not scored" if n_skipped else ""),
        markup=True,
        highlight=False,
    )
    for name, v in result.skipped.items():
        console.print(f"  not scored: {name}: {v['count']} ({v['reason']})", highlight=False, soft_wrap=True)
    console.print(
        f"accuracy [bold]{fmt_metric(m['accuracy'])}[/]  macro F1 {fmt_metric(m['macro_avg']['f1'])}  "
        f"ECE {fmt_metric(m['ece'])}  NLL {fmt_metric(m['nll'])}" + (f"  {top}" if top else ""),
        markup=True,
        highlight=False,
    )
    console.print(f"metrics: {result.metrics_path}", highlight=False, soft_wrap=True)
    console.print(f"report:  {result.report_path}", highlight=False, soft_wrap=True)
