"""Model signing: a manifest of per-file SHA-256 hashes of a model directory, signed with Ed25519.

(Being built: see issue 15. Until then signing is a no-op.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def sign_model_dir(model_dir: Path, cfg: Any) -> None:
    """Sign ``model_dir`` with the key in ``cfg.key_env`` (``cfg``: :class:`SigningConfig`)."""
    return None
