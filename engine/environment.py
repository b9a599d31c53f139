"""The engine's environment: where the bundled caches are (called explicitly; importing the engine
changes nothing)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def use_bundled_anny_cache() -> None:
    """Point anny at the body-model cache that engine/setup_env.py prebuilt inside the environment
    (``<venv>/anny-cache``), unless the user set ANNY_CACHE_DIR. Call before the first ``import anny``."""
    cache = Path(sys.prefix) / "anny-cache"
    if "ANNY_CACHE_DIR" not in os.environ and cache.is_dir():
        os.environ["ANNY_CACHE_DIR"] = str(cache)
