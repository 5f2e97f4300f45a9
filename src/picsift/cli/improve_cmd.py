"""`picsift tune`, `picsift ensemble`, `picsift calibrate`, `picsift check-drift`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from picsift import api
from picsift.cli.common import JsonOpt, RunOpt, WorkspaceOpt, console, fmt_metric, handle_errors, print_json, warn


def register(app: typer.Typer) -> None:
    """Add the `tune`, `ensemble`, `calibrate` and `check-drift` commands to `app`."""
    app.command("tune")(tune)
    app.command("ensemble")(ensemble)
    app.command("calibrate")(calibrate)
    app.command("check-drift")(check_drift)


@handle_errors(interrupted="the study keeps its finished trials (the same command again continues it)")
def tune(
    workspace: WorkspaceOpt = None,
    model: Annotated[str, typer.Option(help="Registry name to tune.")] = "fastcnn",
    trials: Annotated[int, typer.Option(help="New trials to run in this call.")] = 10,
    time_budget: Annotated[float | None, typer.Option("--time-budget", help="Minutes for the search.")] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Largest epoch count a trial may use.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default tune-MODEL); reuse it to resume.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (data split and sampler).")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps.")] = "auto",
    config: Annotated[Path | None, typer.Option(help="YAML file of fixed training settings.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Search hyper-parameters with Optuna (median pruning) and train the best trial as a run."""
    summary = api.tune(
        workspace=workspace,
        model=model,
        trials=trials,
        time_budget_min=time_budget,
        max_epochs=max_epochs,
        study=study,
        seed=seed,
        device=device,
        settings_file=config,
    )
    if json_out:
        print_json(summary.to_dict())
        return
    console.print(
        f"study [bold]{escape(summary.study)}[/]: {summary.trials_total} trials "
        f"({summary.trials_complete} complete, {summary.trials_pruned} pruned)",
        markup=True,
    )
    console.print(f"best trial {summary.best_trial}: val acc {fmt_metric(summary.best_value)} {summary.best_params}")
    console.print(f"run: {summary.run_dir} (study plot: tune.html)")


@handle_errors
def ensemble(
    runs: Annotated[list[str] | None, typer.Argument(help="Two or more run ids or folders.")] = None,
    workspace: WorkspaceOpt = None,
    snapshots: Annotated[
        str | None,
        typer.Option("--snapshots", help="Instead of RUNS: one run trained with --snapshots N; ensemble its epochs."),
    ] = None,
    last: Annotated[int | None, typer.Option(help="With --snapshots: only the last N snapshots.")] = None,
    method: Annotated[str, typer.Option(help="mean | weighted (weights fitted on validation NLL).")] = "mean",
    name: Annotated[str | None, typer.Option(help="A name for the ensemble's run folder.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Combine runs (or one run's epoch snapshots) into a new run averaging their probabilities."""
    result = api.ensemble(
        list(runs or []), workspace=workspace, snapshots=snapshots, last=last, method=method, name=name
    )
    if result.resized_members:
        warn(
            f"{', '.join(result.resized_members)} see each image resized from the ensemble's {result.input_size} px "
            "input, not decoded at their own smaller size: their votes can differ from their own predictions "
            "(the member accuracies above are measured that way); ensembles of one input size avoid it"
        )
    if json_out:
        print_json(result.to_dict())
        return
    accs = ", ".join(fmt_metric(a) for a in result.member_val_acc)
    what = f"{len(result.members)} snapshots of {snapshots}" if snapshots else f"{len(result.members)} runs"
    console.print(f"ensemble of {what} ({method}): val acc {fmt_metric(result.best_val_acc)}")
    console.print(f"members: {accs}; weights {[round(w, 3) for w in result.weights]}")
    console.print(f"run: {result.run_dir}")


@handle_errors
def calibrate(
    workspace: WorkspaceOpt = None,
    run: RunOpt = None,
    tta: Annotated[
        bool,
        typer.Option("--tta", help="Choose test-time views (if the run has none); fit on TTA-averaged probabilities."),
    ] = False,
    target_frr: Annotated[
        float, typer.Option(help="Unknown rejection: share of known-class images allowed to be rejected.")
    ] = 0.05,
    thresholds: Annotated[
        str | None,
        typer.Option(
            "--thresholds",
            help="Per-class decision thresholds maximising macro-f1 | balanced-accuracy on validation data "
            "(stored in the run's inference spec); none removes them. Default: keep the run's current ones.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Fit temperature scaling, optional per-class thresholds and unknown rejection (the run's inference spec).

    With --tta, the run's test-time views are chosen first (when it has none) and everything is fitted on the
    TTA-averaged probabilities.
    """
    fit = api.calibrate(workspace=workspace, run=run, tta=tta, target_frr=target_frr, thresholds=thresholds)
    for line in (fit.thresholds or {}).get("warnings", []):
        warn(f"class scales: {line}")
    if json_out:
        print_json(fit.to_dict())
        return
    run_dir, fitted, result, unknown = fit.run_dir, fit.thresholds, fit.temperature, fit.unknown
    if fitted is not None:
        for split in ("val", "test"):
            if split in fitted:
                r = fitted[split]
                console.print(
                    f"thresholds ({fitted['metric']}) {split}: {fmt_metric(r['before'])} -> {fmt_metric(r['after'])} "
                    f"(accuracy {fmt_metric(r['accuracy_before'])} -> {fmt_metric(r['accuracy_after'])})"
                )
        scales = ", ".join(f"{c} x{s:.2f}" for c, s in zip(fitted["classes"], fitted["scales"], strict=True))
        console.print(f"class scales: {scales}")
    console.print(f"temperature {result['temperature']:.3f} (fitted on {result['n']} validation images)")
    for split in ("val", "test"):
        if split in result:
            r = result[split]
            console.print(
                f"{split}: NLL {fmt_metric(r['nll_before'])} -> {fmt_metric(r['nll_after'])}, "
                f"ECE {fmt_metric(r['ece_before'])} -> {fmt_metric(r['ece_after'])}"
            )
    console.print(f"reliability diagram: {run_dir / result['reliability_diagram']}")
    t = unknown["thresholds"]
    console.print(
        f"unknown rejection: confidence < {t['confidence']:.3f} or kNN score < {t['knn']:.3f} "
        f"(rejects {fmt_metric(unknown['val_rejection_rate'], '.1%')} of validation images)"
    )


@handle_errors
def check_drift(
    folder: Annotated[str, typer.Argument(help="A folder of new images, or an object-storage prefix (s3://...).")],
    workspace: WorkspaceOpt = None,
    run: RunOpt = None,
    max_images: Annotated[int, typer.Option(help="Sample at most this many images per side.")] = 2000,
    json_out: JsonOpt = False,
) -> None:
    """Is a new folder of images still like the training data? Prints a plain verdict."""
    result = api.check_drift(folder, workspace=workspace, run=run, max_images=max_images)
    if json_out:
        print_json(result.to_dict())
        return
    e, c, m = result.embedding, result.confidence, result.class_mix
    console.print(f"{result.n_new} new images vs {result.n_reference} held-out training-distribution images")
    console.print(
        f"embedding shift: domain-classifier AUC {fmt_metric(e['domain_auc'], '.3f')} (0.5 = indistinguishable)"
    )
    console.print(f"confidence: {fmt_metric(c['reference_mean'], '.3f')} -> {fmt_metric(c['new_mean'], '.3f')}")
    console.print(f"class mix shift (total variation): {fmt_metric(m['total_variation'], '.3f')}")
    console.print(result.message, style="bold")
