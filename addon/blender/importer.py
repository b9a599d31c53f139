"""One entry point that puts a read result into the scene: onto a new or Video Mocap armature
(``apply``), or retargeted onto the user's rig (``retarget_apply``). Used by the video import, the
result import operator and the batch command, so one wrapper (an import transaction) covers all."""

from __future__ import annotations

import bpy

from ..core import footlock, rig, shots
from ..core.result import MotionResult, ResultError
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
                  options: RetargetOptions = RetargetOptions(), shot: int = 0) -> bpy.types.Object:
    """Animate ``target`` (or a new armature) with ``result`` (only its shot number ``shot``, 1-based,
    when not 0); returns the animated armature. A new armature also gets the body mesh when the file has
    one and ``options.body_mesh`` is set. Where the file marks foot contact, the feet are first held in
    place (``options.foot_lock``, core.footlock). Timeline markers show where the person was lost and
    where the shots cut (``add_markers``)."""
    try:
        result = shots.select_shot(result, shot)
    except ResultError as e:
        raise apply.ApplyError(str(e)) from e
    result = footlock.lock_feet(result, options.foot_lock)
    if target is None or is_own_armature(target):
        obj = apply.apply_result(context, result, name=name, target=target, set_scene=set_scene)
        if target is None and options.body_mesh and result.mesh is not None:
            body.build_body(context, obj, result, name)
    else:
        obj = retarget_apply.apply_retarget(context, result, target, name=name, options=options,
                                            set_scene=set_scene)
    add_markers(context.scene, result)
    return obj


def add_markers(scene: bpy.types.Scene, result: MotionResult) -> list[str]:
    """Timeline markers ``lost A-B`` and ``cut`` (core.shots.markers) at the frames the keys were
    written to (the scene's rate and start, as the apply step used them); a marker already there with
    the same name is not added twice. Returns the names added."""
    fps = scene.render.fps / scene.render.fps_base
    frames = rig.key_frames(result.times, fps, scene.frame_start)
    have = {(m.name, m.frame) for m in scene.timeline_markers}
    added = []
    for m in shots.markers(result, frames):
        if (m.name, m.frame) not in have:
            scene.timeline_markers.new(m.name, frame=m.frame)
            added.append(m.name)
    return added
