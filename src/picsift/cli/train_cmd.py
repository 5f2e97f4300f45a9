"""`picsift train`, `picsift runs`, `picsift models`, `picsift predict`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from picsift import api
from picsift.cli.common import (
    JsonOpt,
    RunOpt,
    StrictOpt,
    WorkspaceOpt,
    console,
    fmt_metric,
    handle_errors,
    print_json,
    warn,
    warn_skipped,
)


def register(app: typer.Typer) -> None:
    """Add the `train`, `runs`, `models` and `predict` commands to `app`."""
    app.command("train")(train)
    app.command("runs")(runs)
    app.command("models")(models)
    app.command("predict")(predict)


def parse_params(items: list[str] | None) -> dict[str, Any] | None:
    """`--param C=10 --param kernel=rbf` -> {"C": 10, "kernel": "rbf"} (values parsed as YAML scalars)."""
    if not items:
        return None
    from picsift.config import read_yaml
    from picsift.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE, e.g. --param C=10")
        out[key.strip()] = read_yaml(value, f"the value of --param {item!r}")
    return out


@handle_errors(interrupted="stopped before training started: nothing was written")
def train(
    workspace: WorkspaceOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Registry name (see `picsift models`), or auto (default): fast CNN or transfer, from the data."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the recipe's choice).")] = None,
    time_budget: Annotated[float | None, typer.Option("--time-budget", help="Minutes; the schedule fits it.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    pretrained: Annotated[
        bool, typer.Option(help="Start from ImageNet weights (torchvision/timm; transfer models always do).")
    ] = False,
    weights: Annotated[
        str | None, typer.Option(help="Local pretrained weights file (.safetensors/.pth) to start from.")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Model input size in pixels.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adamw (default) | sgd (nesterov).")] = None,
    schedule: Annotated[str | None, typer.Option(help="onecycle (default) | cosine.")] = None,
    label_smoothing: Annotated[
        float | None, typer.Option(help="Label smoothing (default 0.1; the fast CNN's recipe 0.2).")
    ] = None,
    augment: Annotated[str | None, typer.Option(help="none | flip-crop (default) | trivial | randaugment.")] = None,
    early_stopping: Annotated[int | None, typer.Option(help="Patience in epochs (default 0: off).")] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue this run from its checkpoint, with its own settings (give only those to change: "
            "--epochs, --time-budget, --device, ...); an unfinished run continues in its own folder."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto (default) | cpu | cuda | mps.")] = None,
    features: Annotated[str | None, typer.Option(help="Feature extractor for classical models.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the run folder.")] = None,
    with_feedback: Annotated[bool, typer.Option("--with-feedback", help="Add accepted feedback images.")] = False,
    balance: Annotated[
        str | None, typer.Option(help="Class imbalance: auto | weights | sampler | none (default none).")
    ] = None,
    mixup: Annotated[bool, typer.Option("--mixup", help="MixUp batches (alpha 0.2; set `mixup:` in YAML).")] = False,
    cutmix: Annotated[bool, typer.Option("--cutmix", help="CutMix batches (alpha 1.0).")] = False,
    random_erasing: Annotated[
        bool, typer.Option("--random-erasing", help="Random erasing (p 0.25; set `random_erasing:` in YAML).")
    ] = False,
    tta: Annotated[bool, typer.Option("--tta", help="Choose test-time augmentation views after training.")] = False,
    snapshots: Annotated[
        int | None, typer.Option(help="Keep the last N epochs' weights (for `picsift ensemble --snapshots`).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Model hyper-parameter KEY=VALUE (repeatable), e.g. --param C=10."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of settings (flags override it).")] = None,
    strict: StrictOpt = False,
    calibrate: Annotated[
        bool, typer.Option(help="Fit a temperature on validation after training (the run's inference spec).")
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """Train a model on the workspace's labelled images; writes a complete run folder."""
    result = api.train_model(
        workspace=workspace,
        settings_file=config,
        model=model,
        epochs=epochs,
        time_budget_min=time_budget,
        seed=seed,
        pretrained=pretrained or None,
        weights=weights,
        image_size=image_size,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        optimizer=optimizer,
        schedule=schedule,
        label_smoothing=label_smoothing,
        augment=augment,
        early_stopping=early_stopping,
        resume=resume,
        device=device,
        features=features,
        run_name=name,
        with_feedback=with_feedback or None,
        balance=balance,
        mixup=0.2 if mixup else None,
        cutmix=1.0 if cutmix else None,
        random_erasing=0.25 if random_erasing else None,
        tta=tta or None,
        snapshots=snapshots,
        model_params=parse_params(param),
        strict=strict or None,
        calibrate=None if calibrate else False,
    )
    if api.process_rank() != 0:  # under torchrun every process trains; rank 0 reports the run
        return
    warn_skipped(result.skipped)
    for line in result.warnings:
        warn(line)
    out = {
        "run_id": result.run_id,
        "run_dir": str(result.run_dir),
        "model": result.model,
        "best_val_acc": result.val_acc,
        "train_seconds": round(result.seconds, 2),
        "epochs": len(result.history),
        "skipped_images": [s.to_dict() for s in result.skipped],
        "warnings": result.warnings,
        "auto": result.auto.to_dict() if result.auto else None,
        "resumed": result.resumed,
        "calibration": result.calibration,
        "kept": _kept(result.run_dir),
    }
    if json_out:
        print_json(out)
    else:
        if result.auto is not None:
            console.print(result.auto.message, highlight=False, soft_wrap=True)
        if result.resumed is not None:
            console.print(_resumed_line(result.resumed, result.run_id), highlight=False, soft_wrap=True)
        acc = fmt_metric(result.val_acc)
        measured = f", val acc {acc}" if acc != "n/a" else "; no validation images: validation accuracy not measured"
        console.print(
            f"trained [bold]{escape(result.model)}[/] in {result.seconds:.1f}s{measured}",
            markup=True,
            highlight=False,
        )
        if out["kept"]:
            console.print(f"kept: {out['kept']}", highlight=False, soft_wrap=True)
        cal = result.calibration
        if "temperature" in cal:
            console.print(
                f"calibrated: temperature {cal['temperature']:.2f}, validation NLL {fmt_metric(cal['val_nll_before'])}"
                f" -> {fmt_metric(cal['val_nll_after'])}",
                highlight=False,
            )
        console.print(f"run: {result.run_dir}", highlight=False)


def _resumed_line(resumed: dict[str, Any], run_id: str) -> str:
    """`resumed run R from epoch N (in its own folder | as new run R2; R stays as it finished)`."""
    where = "in its own folder" if resumed["same_folder"] else f"as new run {run_id}; {resumed['run']} stays as it was"
    after = f" after epoch {resumed['from_epoch']}" if resumed.get("from_epoch") is not None else ""
    return f"resumed run {resumed['run']}{after}, {where}"


def _kept(run_dir: Path) -> str | None:
    """Which weights the run saved, in words (from run.json): what a transfer run kept, else "epoch K of N" for a
    run of several epochs; None when run.json does not say."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    trainer = record.get("trainer") or {}
    kept = trainer.get("kept") if isinstance(trainer, dict) else None
    if not kept:
        epoch, epochs = record.get("kept_epoch"), record.get("epochs")
        if isinstance(epoch, int) and isinstance(epochs, int) and epochs > 1:
            return f"epoch {epoch} of {epochs} (the val acc above is that model's)"
        return None
    finetune = (trainer.get("phases") or {}).get("finetune") or {}
    if kept != "probe":
        return f"{kept} (fine-tuned from the linear probe)"
    if finetune.get("skipped"):
        return f"the linear probe; fine-tuning skipped: {finetune['skipped']}"
    if finetune.get("ran"):
        return f"the linear probe: none of {finetune.get('epochs', 0)} fine-tuning epochs beat it on validation"
    return "the linear probe"


@handle_errors
def runs(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List the workspace's runs: id, model, date, the saved model's val accuracy, epochs and whether they finished
    (a run that failed with a checkpoint continues with `train --resume RUN`)."""
    found = api.list_runs(workspace=workspace)
    if json_out:
        print_json({"runs": [r.to_dict() for r in found]})
        return
    if not found:
        console.print("no runs in this workspace: run `picsift train` first", highlight=False)
        return
    # Plain columns, never cut: the run id is what `--resume` and `--run` take.
    rows = [
        (r.run_id, r.model or "?", r.created.replace("T", " ")[:16], fmt_metric(r.val_acc), str(r.epochs), r.status)
        for r in found
    ]
    header = ("run", "model", "date (UTC)", "val acc", "epochs", "status")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [c.rjust(w) if i in (3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        console.print("  ".join(cells).rstrip(), highlight=False, soft_wrap=True)


@handle_errors
def models(
    pattern: Annotated[str | None, typer.Argument(help="Glob or substring to filter names.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the model registry with input size, parameter count and where pretrained weights come from."""
    rows = api.describe_models(pattern)
    if json_out:
        print_json({"models": [r.to_dict() for r in rows]})
        return
    # Plain columns, never cut or wrapped mid-cell: the name is what `--model` takes (the same layout as `runs`).
    header = ("name", "family", "input", "params", "pretrained weights", "description")
    lines = [header]
    for r in rows:
        p = f"{r.params_10_classes / 1e6:.2f}M" if r.params_10_classes else "-"
        if r.pretrained_offline:
            w = f"offline: {r.weights_source}"
        elif r.weights_source:
            w = r.weights_source if r.family == "transfer" else "download"
        else:
            w = "-"
        lines.append((r.name, r.family, str(r.input_size), p, w, r.description))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        cells = [c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)]
        console.print("  ".join([*cells, line[-1]]).rstrip(), highlight=False, soft_wrap=True)
    console.print("params: for a 10-class head", highlight=False)


_SHOW_SKIPPED = 5  # skipped files listed by name; --json lists them all


def _print_skipped(result: api.PredictResult) -> None:
    skipped = result.skipped
    kinds = ", ".join(f"{kind} {n}" for kind, n in result.skipped_by_kind().items())
    console.print(f"skipped {len(skipped)} files (not predicted): {kinds}", highlight=False, soft_wrap=True)
    for s in skipped[:_SHOW_SKIPPED]:
        console.print(f"  {s.path}: {s.reason}", highlight=False, soft_wrap=True)
    if len(skipped) > _SHOW_SKIPPED:
        console.print(f"  ... and {len(skipped) - _SHOW_SKIPPED} more (see --json)", highlight=False)


def _print_predictions(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if "error" in r:
            console.print(f"{r['path']}: error: {r['error']}", style="red", highlight=False, soft_wrap=True)
        else:
            alts = escape(", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top_k"]))
            console.print(
                f"{escape(str(r['path']))}: [bold]{escape(r['label'])}[/] ({alts})",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )


def _print_batch_summary(result: Any) -> None:
    """The closing lines of `picsift predict --out`: what was skipped by kind, then one summary line."""
    if result.skipped:
        kinds = ", ".join(f"{kind} {n}" for kind, n in result.skipped.items())
        console.print(f"skipped {sum(result.skipped.values())} files (not images): {kinds}", highlight=False)
        for s in result.skipped_examples:
            console.print(f"  {s.path}: {s.reason}", highlight=False, soft_wrap=True)
    resumed = f", {result.resumed} already written" if result.resumed else ""
    console.print(
        f"predicted {result.predicted_now} images in {result.seconds:.1f}s ({result.images_per_second:,.0f} images/s); "
        f"{result.rows} rows in {result.shards} {result.format} shards{resumed}, {result.errors} unreadable; "
        f"manifest: {result.manifest}",
        highlight=False,
        soft_wrap=True,
    )


def _predict_to_folder(paths: list[str], files_from: list[Path], out: Path, json_out: bool, **kw: Any) -> None:
    result = api.predict_to_folder(paths, out=out, files_from=list(files_from), **kw)
    if json_out:
        print_json(result.to_dict())
    else:
        _print_batch_summary(result)
    if result.rows and result.errors == result.rows:
        raise typer.Exit(code=2)


@handle_errors(
    interrupted="--out keeps the shards written so far (the same command again continues); nothing else was written"
)
def predict(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Image files, folders, glob patterns or URLs (s3://bucket/new/).")
    ] = None,
    workspace: WorkspaceOpt = None,
    run: RunOpt = None,
    bundle: Annotated[str | None, typer.Option(help="An exported bundle folder (or its URL) instead of a run.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="How many classes per image.")] = 1,
    tta: Annotated[bool, typer.Option("--tta", help="Test-time augmentation (the run's chosen views).")] = False,
    reject_unknown: Annotated[
        bool, typer.Option("--reject-unknown", help='Say "unknown" for images unlike every class.')
    ] = False,
    json_out: JsonOpt = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write predictions to this CSV file.")] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Stream predictions into this folder as shards + manifest.json (any number of images)."
        ),
    ] = None,
    files_from: Annotated[
        list[Path] | None, typer.Option("--files-from", help="A text file of image paths, one a line (with --out).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Decoding processes (with --out; 0: decode in this one; default: cores - 1, 1 to 4)."),
    ] = None,
    out_format: Annotated[str, typer.Option("--format", help="Shard format (with --out): csv | parquet.")] = "csv",
    shard_size: Annotated[int, typer.Option("--shard-size", help="Rows per shard file (with --out).")] = 10_000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per model call (with --out).")] = 64,
    threads: Annotated[
        int | None, typer.Option(help="Model threads (with --out; default: the runtime's, one per core).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the shards of other inputs or settings in --out.")
    ] = False,
) -> None:
    """Predict the class of images with a trained run (default: the latest) or an exported bundle.

    Folders are walked as `picsift import` walks them (same formats, hidden folders left out, links
    followed); what they hold that is not an image is counted at the end, with why. With --out, any number of
    images stream through worker processes into shard files; the same command again after a kill resumes.
    """
    from picsift.errors import ConfigError

    if out_dir is not None:
        if csv_file is not None:
            raise ConfigError("--csv and --out: choose one (--out writes shard files, --format csv or parquet)")
        _predict_to_folder(
            paths or [], files_from or [], out_dir, json_out, workspace=workspace, run=run, bundle=bundle,
            workers=workers, format=out_format, shard_size=shard_size, batch_size=batch_size, top_k=top_k,
            tta=tta, reject_unknown=reject_unknown, threads=threads, overwrite=overwrite,
        )  # fmt: skip
        return
    if files_from:
        raise ConfigError("--files-from needs --out (a folder for the prediction shards)")
    if not paths:
        raise ConfigError("nothing to predict: give image files, folders or glob patterns")
    result = api.predict(
        paths, workspace=workspace, run=run, bundle=bundle, top_k=top_k, tta=tta, reject_unknown=reject_unknown
    )
    out = result.to_dict()
    rows, skipped = out["predictions"], out["skipped"]
    if csv_file is not None:
        with csv_file.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "confidence", "error"])
            for r in rows:
                w.writerow([r["path"], r.get("label", ""), r.get("confidence", ""), r.get("error", "")])
    if json_out:
        print_json(out)
    elif csv_file is None:
        _print_predictions(rows)
    if skipped and not json_out:
        _print_skipped(result)
    if rows and all("error" in r for r in rows):
        raise typer.Exit(code=2)
