"""The transfer recipe: an offline ImageNet-pretrained backbone, cached embeddings, a linear probe folded into the
classifier, then fine-tuning for what the time budget leaves.

`fit.py` runs it; the other modules are its parts: `recipe` (the settings), `plan` (the input resolution),
`embeddings` (the cached embedding pass), `probe` (the linear head) and `finetune` (the training loop).
"""

# `fit` (torchvision transforms, over a second to import) is imported by the trainer only when a transfer model trains.
from picsift.train.transfer.plan import resolve_data_config
from picsift.train.transfer.recipe import TransferRecipe

__all__ = ["TransferRecipe", "resolve_data_config"]
