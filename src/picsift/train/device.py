"""Device selection and mixed precision now live in `picsift.device` (a foundation every layer may use)."""

from picsift.device import autocast, cpu_has_native_bf16, seed_everything, select_device

__all__ = ["autocast", "cpu_has_native_bf16", "seed_everything", "select_device"]
