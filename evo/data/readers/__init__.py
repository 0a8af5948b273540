"""Readers for each on-disk dataset format.

Every reader returns the same ``RawImages`` record (decoded pixels, labels, class names and a
content hash), so splitting, normalisation and fingerprinting live in one place
(``evo.data.dataset``) and a new format only has to decode.
"""

from __future__ import annotations

from evo.data.readers._raw import RawImages, sha256_file

__all__ = ["RawImages", "sha256_file"]
