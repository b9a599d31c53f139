"""Suite-wide hooks.

bpy 4.5 as a Python module (the Blender tests, test_synth) starts a C++ helper thread that its static
destructors never stop, so the interpreter can hang forever at exit after every test has passed (CI
hit its 90-minute limit that way). When bpy was imported, the process leaves with ``os._exit`` and
pytest's own exit status once pytest has finished everything it writes.
"""

from __future__ import annotations

import os
import sys

import pytest

_STATUS = {"code": 0}


def pytest_sessionfinish(session, exitstatus):
    _STATUS["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    bpy = sys.modules.get("bpy")
    if bpy is None or getattr(bpy.app, "binary_path", ""):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_STATUS["code"])
