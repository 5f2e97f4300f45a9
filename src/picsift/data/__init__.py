"""Image formats (the one list picsift reads), the one folder walk, decoding, preprocessing and the decoded-image cache."""
