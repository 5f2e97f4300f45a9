"""Hyper-parameter search with Optuna, stored in the workspace so a study can be resumed.

The study lives in `<workspace>/optuna.sqlite` (name: `--study`, default `tune-<model>`); running
`picsift tune` again adds trials to it. Each trial trains on the images decoded once for the whole
study and reports validation accuracy after every epoch, so the median pruner stops trials that are
behind the median of earlier trials at the same epoch. The best trial is then trained again
through `picsift.train.run` with its settings, so the result is an ordinary run folder (its
config.json reproduces it) holding `tune.json` and `tune.html` (the study plot and trial table).

Search spaces by model family:
- the fast CNN: its recipe's lr (log), label smoothing, epochs, translate augmentation strength
  (0-3 px) and width (a multiplier on its layer widths), the last two passed as model_params;
- other networks: lr (log), weight decay (log), augmentation (none | flip-crop | trivial),
  label smoothing, epochs.
- classical models (TrainConfig.model_params): `C` (log) for SVMs and logistic regression,
  `gamma` (log) for RBF SVMs, `n_neighbors` for k-nearest-neighbours.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import inspect
import io
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from picsift.config import MAX_EPOCHS, MAX_MINUTES, TrainConfig, check_number, check_optional, to_jsonable
from picsift.errors import ConfigError
from picsift.improve.calibration import calibrate_after_training
from picsift.models.registry import ModelSpec, get_spec
from picsift.runs import RunFolder
from picsift.store import Workspace

log = logging.getLogger("picsift.improve")
STUDY_FILE = "optuna.sqlite"
MAX_TRIALS = 100_000


def _width_param(spec: ModelSpec) -> tuple[str, Any] | None:
    """("widths", default tuple) or ("width", default int) if the model's constructor takes one."""
    from picsift.models.registry import create_model

    try:
        model = create_model(spec.name, num_classes=2)
    except Exception:  # noqa: BLE001 - a model that cannot be built without weights: no width search
        return None
    params = inspect.signature(type(model).__init__).parameters
    for name in ("widths", "width"):
        if name in params and params[name].default is not inspect.Parameter.empty:
            return name, params[name].default
    return None


def _classical_space(trial: Any, spec: ModelSpec, base: TrainConfig, max_epochs: int) -> dict[str, Any]:
    """Each classical model's own hyper-parameters (scikit-learn's names): a tree has no C, an SVM no depth."""
    name = spec.name.lower()
    params: dict[str, Any] = dict(base.model_params)
    if "knn" in name or "neighbor" in name:
        params["n_neighbors"] = trial.suggest_int("n_neighbors", 1, 25)
    elif name == "decision-tree":
        params["max_depth"] = trial.suggest_int("max_depth", 2, 30)
        params["min_samples_leaf"] = trial.suggest_int("min_samples_leaf", 1, 20)
    elif name == "random-forest":
        params["max_features"] = trial.suggest_categorical("max_features", ["sqrt", "log2"])
        params["min_samples_leaf"] = trial.suggest_int("min_samples_leaf", 1, 10)
    elif name == "gradient-boosting":
        params["learning_rate"] = trial.suggest_float("learning_rate", 0.02, 0.3, log=True)
        params["max_leaf_nodes"] = trial.suggest_int("max_leaf_nodes", 8, 63)
    else:
        params["C"] = trial.suggest_float("C", 1e-2, 1e2, log=True)
        if "svm" in name or "svc" in name:
            params["gamma"] = trial.suggest_float("gamma", 1e-4, 1e0, log=True)
    return {"model_params": params}


def _fast_space(trial: Any, spec: ModelSpec, base: TrainConfig, max_epochs: int) -> dict[str, Any]:
    # The fast recipe has its own optimiser (lr = the filter learning rate, default 0.24), no weight
    # decay setting, and batch-level flip + translate augmentation whose strength is `translate`.
    params = {**base.model_params, "translate": trial.suggest_int("translate", 0, 3)}
    out: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 0.06, 0.6, log=True),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.3),
        "epochs": trial.suggest_int("epochs", max(1, max_epochs // 2), max_epochs),
    }
    width = _width_param(spec)
    if width is not None:
        mult = trial.suggest_categorical("width_mult", [0.5, 0.75, 1.0])
        name, default = width
        default = base.model_params.get(name, default)  # relative to the widths asked for, if any
        if name == "widths":
            params["widths"] = [max(8, int(w * mult)) for w in default]
        else:
            params["width"] = max(8, int(default * mult))
    out["model_params"] = params
    return out


def _standard_space(trial: Any, spec: ModelSpec, base: TrainConfig, max_epochs: int) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-3, 0.3, log=True),
        "augment": trial.suggest_categorical("augment", ["none", "flip-crop", "trivial"]),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
        "epochs": trial.suggest_int("epochs", max(1, max_epochs // 2), max_epochs),
    }


def _transfer_space(trial: Any, spec: ModelSpec, base: TrainConfig, max_epochs: int) -> dict[str, Any]:
    # Fine-tuning rates around the transfer recipe's 2e-4 (the head's scales with it), how many stages learn,
    # and the probe's regularisation (fixed per trial rather than chosen from its grid on the same validation set).
    params = {
        **base.model_params,
        "train_stages": trial.suggest_int("train_stages", 1, 4),
        "probe_c": trial.suggest_float("probe_c", 1e-3, 1e-1, log=True),
    }
    return {
        "lr": trial.suggest_float("lr", 5e-5, 1e-3, log=True),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
        "epochs": trial.suggest_int("epochs", max(1, max_epochs // 2), max_epochs),
        "model_params": params,
    }


# Search spaces by model family (the families of train.trainers.TRAINERS).
SEARCH_SPACES: dict[str, Callable[[Any, ModelSpec, TrainConfig, int], dict[str, Any]]] = {
    "fast": _fast_space,
    "transfer": _transfer_space,
    "torchvision": _standard_space,
    "timm": _standard_space,
    "classical": _classical_space,
}


def sample_params(trial: Any, spec: ModelSpec, base: TrainConfig, max_epochs: int) -> dict[str, Any]:
    """TrainConfig overrides for one trial, from the model family's search space."""
    space = SEARCH_SPACES.get(spec.family)
    if space is None:
        raise ConfigError(f"no search space for {spec.name} (family {spec.family!r}; spaces: {sorted(SEARCH_SPACES)})")
    return space(trial, spec, base, max_epochs)


class _Reporter:
    """The trainers' per-epoch log callback: reports val accuracy to the trial and prunes."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.rows: list[dict[str, Any]] = []

    def __call__(self, row: dict[str, Any]) -> None:
        import optuna

        self.rows.append(row)
        acc = row.get("val_acc")
        if acc is None or acc != acc:  # NaN: nothing to report
            return
        step = int(row.get("epoch", len(self.rows)))
        self.trial.report(float(acc), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"val acc {acc:.4f} at epoch {step} is below the median")


def _load_data(ws: Workspace, cfg: TrainConfig, spec: ModelSpec) -> Any:
    """The same data a training run with `cfg` would see."""
    from picsift.train.pipeline import RunInputs, load_data

    inputs = RunInputs.gather(ws, cfg, spec)
    if not inputs.val_rows:
        raise ConfigError("tuning needs validation images (a val split or enough images to hold 10% out)")
    return load_data(ws, cfg, spec, inputs)[0]


def tune(
    base: TrainConfig,
    *,
    trials: int = 10,
    time_budget_min: float | None = None,
    study_name: str | None = None,
    max_epochs: int | None = None,
) -> dict[str, Any]:
    """Run (or continue) a study; train the best trial as a normal run. Returns a summary dict.

    ConfigError for `trials` outside 1-MAX_TRIALS, a time budget (minutes) that is not a finite number > 0, or
    `max_epochs` outside 1-MAX_EPOCHS, checked before anything runs."""
    check_number(trials, "--trials", low=1, high=MAX_TRIALS, whole=True)
    check_optional(time_budget_min, "--time-budget (minutes)", low=0, low_open=True, high=MAX_MINUTES)
    check_optional(max_epochs, "--max-epochs", low=1, high=MAX_EPOCHS, whole=True)
    try:
        import optuna
    except ImportError as e:
        raise ConfigError("`picsift tune` needs optuna: pip install 'picsift[tune]'") from e
    from picsift.train import pipeline
    from picsift.train.trainers import check_settings, fit_on_data

    base = base.validate()
    spec = get_spec(base.model)
    check_settings(spec, base)
    ws = Workspace.open(base.workspace)
    max_epochs = max_epochs or base.epochs or 10
    study_name = study_name or f"tune-{spec.name}"
    storage = f"sqlite:///{ws.root / STUDY_FILE}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        # A new seed per resumption, so a continued study does not replay its first suggestions.
        sampler=optuna.samplers.TPESampler(seed=base.seed + 1000 * _n_trials(optuna, study_name, storage)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    data = _load_data(ws, base, spec)

    def objective(trial: Any) -> float:
        overrides = sample_params(trial, spec, base, max_epochs)
        cfg = dataclasses.replace(base, **overrides).validate()
        trial.set_user_attr("config", to_jsonable(overrides))
        reporter = _Reporter(trial)
        with tempfile.TemporaryDirectory(prefix="picsift-trial-") as tmp:
            trained = fit_on_data(spec, data, cfg, run_dir=Path(tmp), log_row=reporter, ws=ws)
        if trained.val_acc is None:
            raise ConfigError(f"model {spec.name} reported no validation accuracy to tune on")
        # The kept model's accuracy, not the best epoch's: the run trained from the best trial saves that model.
        return float(trained.val_acc)

    t0 = time.perf_counter()
    study.optimize(
        objective,
        n_trials=trials,
        timeout=time_budget_min * 60 if time_budget_min else None,
        catch=(),
    )
    search_s = time.perf_counter() - t0
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"study {study_name} has no completed trial yet: give it more --trials or time")
    best = study.best_trial
    best_cfg = dataclasses.replace(base, **_overrides_of(best), run_name=base.run_name or f"tuned-{spec.name}")
    t1 = time.perf_counter()
    result = pipeline.run(best_cfg, calibrator=calibrate_after_training)
    summary = {
        "study": study_name,
        "storage": str(ws.root / STUDY_FILE),
        "trials_total": len(study.trials),
        "trials_complete": len(complete),
        "trials_pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "search_seconds": search_s,
        "materialise_seconds": time.perf_counter() - t1,
        "run_id": result.run_id,
        "run_dir": str(result.run_dir),
        "run_val_acc": result.val_acc,
    }
    run = RunFolder(result.run_dir)
    run.write_tuning({**summary, "trials": _trial_rows(study)})
    run.tuning_report_path.write_text(study_html(study, summary))
    return summary


def _n_trials(optuna: Any, study_name: str, storage: str) -> int:
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:
        return 0


def _overrides_of(trial: Any) -> dict[str, Any]:
    cfg = dict(trial.user_attrs.get("config", {}))
    return cfg


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "intermediate": {int(k): v for k, v in t.intermediate_values.items()},
            "seconds": t.duration.total_seconds() if t.duration else None,
        }
        for t in study.trials
    ]


def study_plot_png(study: Any) -> bytes:
    """Left: each trial's best val accuracy and the running best. Right: per-epoch curves (pruned red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _trial_rows(study)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    done = [r for r in rows if r["state"] == "COMPLETE"]
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    a.scatter([r["number"] for r in done], [r["value"] for r in done], label="complete", color="#4c72b0")
    a.scatter(
        [r["number"] for r in pruned],
        [max(r["intermediate"].values(), default=0) for r in pruned],
        label="pruned (last report)",
        color="#c44e52",
        marker="x",
    )
    best, xs, ys = -1.0, [], []
    for r in rows:
        if r["state"] == "COMPLETE" and r["value"] is not None:
            best = max(best, r["value"])
        if best >= 0:
            xs.append(r["number"])
            ys.append(best)
    a.step(xs, ys, where="post", color="black", label="best so far")
    a.set_xlabel("trial")
    a.set_ylabel("val accuracy")
    a.legend(fontsize=8)
    a.set_title("optimisation history")
    for r in rows:
        steps = sorted(r["intermediate"])
        if steps:
            color = "#c44e52" if r["state"] == "PRUNED" else "#4c72b0"
            b.plot(steps, [r["intermediate"][s] for s in steps], color=color, alpha=0.7)
    b.set_xlabel("epoch")
    b.set_title("val accuracy per epoch (red: pruned)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def study_html(study: Any, summary: dict[str, Any]) -> str:
    """An HTML page of the study: trial counts, the best trial and its run, a plot and a table of the trials."""
    png = base64.b64encode(study_plot_png(study)).decode()
    cells = []
    for r in _trial_rows(study):
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        cells.append(
            f"<tr><td>{r['number']}</td><td>{r['state']}</td><td>{value}</td>"
            f"<td>{html.escape(str(r['params']))}</td></tr>"
        )
    rows = "".join(cells)
    return (
        "<!doctype html><meta charset='utf-8'><title>picsift tune: "
        f"{html.escape(summary['study'])}</title><body style='font-family:sans-serif'>"
        f"<h1>Study {html.escape(summary['study'])}</h1>"
        f"<p>{summary['trials_total']} trials ({summary['trials_complete']} complete, "
        f"{summary['trials_pruned']} pruned); best trial {summary['best_trial']} with val accuracy "
        f"{summary['best_value']:.4f}; materialised as run <code>{html.escape(summary['run_id'])}</code>.</p>"
        f"<img alt='study plot' src='data:image/png;base64,{png}'>"
        "<table border=1 cellpadding=4><tr><th>trial</th><th>state</th><th>val acc</th><th>params</th></tr>"
        f"{rows}</table></body>"
    )
