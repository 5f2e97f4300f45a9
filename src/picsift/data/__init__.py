"""Image decoding, preprocessing and the decoded-image cache."""
