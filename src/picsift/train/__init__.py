"""4 TRAIN: data pipeline, augmentation, training loops and run folders."""

from picsift.train.pipeline import RunResult, run

__all__ = ["RunResult", "run"]
