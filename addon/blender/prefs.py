"""Preferences: where the engine's Python is, its state, and a button that sets it up."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..core import engine as core_engine
from .names import ADDON_PACKAGE, ENGINE_ROOT

# Last ``engine check`` per interpreter path (checked on demand, never while drawing).
STATUS_CACHE: dict[str, core_engine.EngineStatus] = {}


def default_venv() -> Path | None:
    """``<extension user dir>/engine-venv``; None when not running as an installed extension."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path="engine-venv"))
    except (ValueError, KeyError, RuntimeError):
        return None


class VIDMOCAP_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    engine_python: StringProperty(  # type: ignore[valid-type]
        name="Engine Python", subtype='FILE_PATH',
        description="Python interpreter of an existing engine environment; empty uses the one set up "
                    "by the add-on (or $VIDEO_MOCAP_ENGINE_PYTHON)")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "engine_python")
        python = engine_python(context)
        col = layout.column(align=True)
        col.label(text=f"Using: {python}" if python else "No engine Python")
        status = STATUS_CACHE.get(str(python))
        if status is None:
            col.label(text="Engine not checked yet", icon='QUESTION')
        elif status.ok:
            extra = ", ".join(x for x in (status.version and f"version {status.version}",
                                          status.device and f"device {status.device}") if x)
            col.label(text=f"Engine ready{': ' + extra if extra else ''}", icon='CHECKMARK')
        else:
            col.label(text=status.message, icon='ERROR' if status.found else 'CANCEL')
        heavy = core_engine.heavy_installed(status) if status is not None else None
        if heavy is not None:
            col.label(text="BlazePose Heavy: installed" if heavy else
                      "BlazePose Heavy: not installed (Keypoint Quality 'Heavy' needs it)",
                      icon='CHECKMARK' if heavy else 'INFO')
        job = context.window_manager.vidmocap_job
        row = layout.row()
        row.operator("vidmocap.check_engine", icon='FILE_REFRESH')
        row.operator("vidmocap.setup_engine", icon='IMPORT')
        if heavy is False:
            layout.operator("vidmocap.setup_engine", text="Install BlazePose Heavy", icon='IMPORT').heavy_only = True
        if job.running and job.status.startswith("Setup"):
            layout.progress(factor=job.progress, type='BAR', text=job.status[:120])


def get_prefs(context: bpy.types.Context) -> VIDMOCAP_AddonPreferences | None:
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    if addon is None:
        return None
    prefs = addon.preferences
    assert isinstance(prefs, VIDMOCAP_AddonPreferences)
    return prefs


def engine_python(context: bpy.types.Context, override: str = "") -> Path | None:
    prefs = get_prefs(context)
    pref_path = override or (bpy.path.abspath(prefs.engine_python) if prefs and prefs.engine_python else "")
    return core_engine.resolve_python(pref_path, default_venv())


def engine_root() -> Path:
    return ENGINE_ROOT


classes = (VIDMOCAP_AddonPreferences,)


register, _unregister_classes = bpy.utils.register_classes_factory(classes)


def unregister() -> None:
    _unregister_classes()
    STATUS_CACHE.clear()
