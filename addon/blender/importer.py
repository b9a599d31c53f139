"""One entry point that puts a read result into the scene: onto a new or Video Mocap armature
(``apply``), or retargeted onto the user's rig (``retarget_apply``). Used by the video import, the
result import operator and the batch command, so one wrapper (an import transaction) covers all."""

from __future__ import annotations

import bpy

from ..core import footlock
from ..core.result import MotionResult
from . import apply, body, retarget_apply
from .names import SKELETON_PROP
from .retarget_apply import RetargetOptions


def is_own_armature(obj: bpy.types.Object) -> bool:
    return obj.type == 'ARMATURE' and bool(obj.data.get(SKELETON_PROP, ""))


def check_target(obj: bpy.types.Object | None, result: MotionResult | None = None) -> None:
    """Raise apply.ApplyError for a target that can never work (before the engine runs)."""
    if obj is None:
        return
    if obj.type != 'ARMATURE':
        raise apply.ApplyError(f"'{obj.name}' is not an armature")
    if is_own_armature(obj):
        apply.check_target(obj, result)


def import_result(context: bpy.types.Context, result: MotionResult, *, name: str,
                  target: bpy.types.Object | None = None, set_scene: bool = True,
                  options: RetargetOptions = RetargetOptions()) -> bpy.types.Object:
    """Animate ``target`` (or a new armature) with ``result``; returns the animated armature. A new
    armature also gets the body mesh when the file has one and ``options.body_mesh`` is set. Where the
    file marks foot contact, the feet are first held in place (``options.foot_lock``, core.footlock)."""
    result = footlock.lock_feet(result, options.foot_lock)
    if target is None or is_own_armature(target):
        obj = apply.apply_result(context, result, name=name, target=target, set_scene=set_scene)
        if target is None and options.body_mesh and result.mesh is not None:
            body.build_body(context, obj, result, name)
        return obj
    return retarget_apply.apply_retarget(context, result, target, name=name, options=options,
                                         set_scene=set_scene)
