"""The one normal form of a label (class name), applied wherever a label enters picsift.

The same word can be spelt with different code points: macOS stores file names decomposed (NFD,
"e" + U+0300 for "è"), while most editors write composed text (NFC, U+00E8). Both print the same,
so picsift keeps labels in Unicode Normalization Form C (Unicode Standard Annex #15) with the
surrounding white space removed; two spellings of one class are then one class.

A label is at most MAX_LABEL_CHARS (1,000) characters once normalised, whichever way it enters: a folder name,
a manifest cell, a label file, the labelling app, `set_label`, feedback to a served model. Longer text is no
class name but a mistake (a pasted paragraph, a 1 MB request body); 1,000 leaves room for any real name,
including the longest a file system allows as a folder name (255 bytes).
"""

from __future__ import annotations

import unicodedata

from picsift.errors import LabelError

MAX_LABEL_CHARS = 1000  # characters (code points) of a label in NFC, surrounding white space stripped


def normalize_label(text: object) -> str:
    """`text` in NFC with surrounding white space stripped: " crème " (any spelling) -> "crème".

    Raises LabelError when `text` is not a string, is empty after stripping, or is longer than MAX_LABEL_CHARS
    characters (the message names the limit and starts the label).
    """
    if not isinstance(text, str):
        raise LabelError(f"a label must be text, got {type(text).__name__}")
    label = unicodedata.normalize("NFC", text).strip()
    if not label:
        raise LabelError(f"a label cannot be empty or only spaces (got {text!r})")
    if len(label) > MAX_LABEL_CHARS:
        raise LabelError(
            f"a label is at most {MAX_LABEL_CHARS} characters long; got {len(label)} characters ({label[:40]!r}...)"
        )
    return label


def normalize_optional_label(text: object) -> str | None:
    """normalize_label, with None kept as None (no label); an empty string is still a LabelError."""
    return None if text is None else normalize_label(text)
