"""Batch conversion without installing the extension: Blender runs the add-on straight from this repo.

    blender -b -P scripts/convert.py -- VIDEO... --out DIR [--format blend|bvh|fbx|glb]
            [--engine-python PATH] [--device auto|cpu|cuda] [--camera auto|static|moving]
            [--result R.npz]... [--rig RIG.blend --target ARMATURE [--bone-map MAP.json]
            [--root-motion bone|object|in_place] [--rigify-leg-ik]] [--foot-lock 0..1]

Same as ``blender -b -c video_mocap convert ...`` with the extension installed. The engine's Python
comes from --engine-python, else $VIDEO_MOCAP_ENGINE_PYTHON. Prints one line per video and exits
non-zero if any failed. Also runs under a plain Python that has the ``bpy`` module.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_package():
    """Import the repository root as the package ``video_mocap`` (its modules use relative imports)."""
    spec = importlib.util.spec_from_file_location("video_mocap", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["video_mocap"] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    _load_package()
    from video_mocap.addon.blender import cli  # type: ignore[import-not-found]

    return cli.convert(argv)


def _exit(code: int) -> None:
    """Exit through scripts/vmkit/bpy_exit.py (bpy as a Python module can hang at exit), loaded from its
    file: this script also runs inside Blender, where the repository is not importable."""
    spec = importlib.util.spec_from_file_location("video_mocap_bpy_exit", ROOT / "scripts" / "vmkit" / "bpy_exit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.exit_process(code)


if __name__ == "__main__":
    _exit(main())
