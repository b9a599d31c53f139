"""Video Mocap engine: video in, world-grounded motion file out. Never imports bpy."""

import os as _os
import sys as _sys
from pathlib import Path as _Path

__version__ = "0.1.0"

# engine/setup_env.py prebuilds the anny body-model cache inside the environment: use it.
_cache = _Path(_sys.prefix) / "anny-cache"
if "ANNY_CACHE_DIR" not in _os.environ and _cache.is_dir():
    _os.environ["ANNY_CACHE_DIR"] = str(_cache)
