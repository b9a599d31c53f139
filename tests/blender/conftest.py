"""Blender (bpy module) fixtures: HOME in a temp folder, the extension built, installed and enabled.

Only one Blender lives per process: tests share it and start from an empty home file
(``read_homefile(use_empty=True)``, which keeps the enabled extension, unlike factory settings).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Blender reads its user folders below HOME: keep the tests away from the real one.
_HOME = tempfile.mkdtemp(prefix="video_mocap_home_")
os.environ["HOME"] = _HOME

bpy = pytest.importorskip("bpy")

ROOT = Path(__file__).resolve().parents[2]
FAKE_ENGINE = ROOT / "tests" / "fake_engine.py"
MODULE = "bl_ext.user_default.video_mocap"


def blender_ext() -> Path:
    return Path(bpy.utils.system_resource('SCRIPTS')) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    p = subprocess.run([sys.executable, str(blender_ext()), "build", "--source-dir", str(ROOT),
                        "--output-dir", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    zips = list(out.glob("video_mocap-*.zip"))
    assert len(zips) == 1
    return zips[0]


@pytest.fixture(scope="session")
def extension(built_zip) -> str:
    r = bpy.ops.extensions.package_install_files(filepath=str(built_zip), repo="user_default",
                                                 enable_on_install=True)
    assert r == {'FINISHED'}
    assert MODULE in bpy.context.preferences.addons
    return MODULE


@pytest.fixture()
def blank(extension, monkeypatch, tmp_path):
    """An empty scene with the extension enabled and the fake engine as the engine."""
    bpy.ops.wm.read_homefile(use_empty=True)
    assert extension in bpy.context.preferences.addons
    # The fake engine needs numpy/scipy; scripts/check_blender_versions.sh points this at the dev venv.
    monkeypatch.setenv("VIDEO_MOCAP_ENGINE_PYTHON", os.environ.get("FAKE_ENGINE_PYTHON", sys.executable))
    monkeypatch.setenv("VIDEO_MOCAP_ENGINE_MODULE", str(FAKE_ENGINE))
    monkeypatch.setenv("FAKE_ENGINE_MODE", "ok")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None
    yield bpy.context
    tempfile.tempdir = None
