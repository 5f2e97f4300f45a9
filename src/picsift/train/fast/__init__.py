"""The fast recipe: picsift's from-scratch CNN training, sized to the data and to a time budget.

`fit.py` runs it; the other modules are its parts: `recipe` (the settings), `sizing` (widths, batch, epochs),
`augment` (whole-batch augmentation), `optim` (optimisers and schedule), `resize`, `prune` and `freeze`
(progressive resizing, data pruning, progressive freezing), `runtime` (threads, compile) and `evaluate`
(logits and test-time views).
"""

from picsift.train.fast.evaluate import logits_for, to_input
from picsift.train.fast.fit import fit_fast
from picsift.train.fast.sizing import resolve_data_config

__all__ = ["fit_fast", "logits_for", "resolve_data_config", "to_input"]
