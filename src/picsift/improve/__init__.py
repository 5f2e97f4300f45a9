"""IMPROVE: tuning, ensembles, test-time augmentation, imbalance, calibration, unknowns and drift.

Each concern is one module working on a finished run folder (or on TrainConfig, for tuning):

- `tune`         Optuna search, stored in the workspace (`optuna.sqlite`), best trial materialised as a run
- `ensemble`     average or validation-weighted probabilities of several runs -> a run of family "ensemble"
- `snapshots`    the last N epochs' weights of one run (`train --snapshots N`) -> an ensemble run
- `tta`          test-time augmentation views (flip, shifts), chosen per model on validation data
- `balance`      class weights / balanced sampler from class counts; per-class decision thresholds
- `thresholds`   per-class decision scales for macro-F1 / balanced accuracy -> `thresholds.json`
- `calibration`  temperature scaling on validation data -> `calibration.json` + reliability diagram
- `unknown`      reject "unknown" images below calibrated-confidence and kNN-distance thresholds
- `drift`        is a new folder still like the training data? embedding, class-mix and confidence shift
"""
