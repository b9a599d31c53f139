"""Leave a process that imported ``bpy`` as a Python module without hanging.

bpy 4.5 as a module starts a C++ helper thread (``delayed_close_thread_run``) that its static
destructors never stop: at interpreter exit ``~GlobalState`` can wait forever on that thread's
condition variable (seen in CI: all tests passed, then the process hung until the 90-minute limit).
Inside the Blender binary (``bpy.app.binary_path`` set) Blender's own exit path is used instead.
"""

from __future__ import annotations

import os
import sys


def exit_process(code: int) -> None:
    """``sys.exit(code)``, but with ``os._exit`` after flushing when bpy runs as a module."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and not getattr(bpy.app, "binary_path", ""):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
