"""Turn a result file into an armature and an action (bpy). Maths: ``core.rig``.

Everything is validated before the scene is touched, and anything created is removed again if a
later step fails, so on error the scene and the user's actions are as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..core import rig
from ..core.result import MotionResult
from .names import RETARGET_MESSAGE, SKELETON_PROP


MAX_SCENE_FRAME = 1_048_574   # Blender's last frame


class ApplyError(RuntimeError):
    """A user-facing problem applying a result (the scene is unchanged)."""


def check_target(obj: bpy.types.Object | None, result: MotionResult | None = None) -> None:
    """Raise ApplyError unless ``obj`` is an armature built by this add-on for the same skeleton."""
    if obj is None:
        return
    if obj.type != 'ARMATURE':
        raise ApplyError(f"'{obj.name}' is not an armature")
    joints = str(obj.data.get(SKELETON_PROP, ""))
    if not joints:
        raise ApplyError(RETARGET_MESSAGE)
    names = joints.split(",")
    if any(n not in obj.data.bones for n in names):
        raise ApplyError(f"Armature '{obj.name}' lost bones since Video Mocap made it. " + RETARGET_MESSAGE)
    if result is not None and tuple(names) != result.joint_names:
        raise ApplyError(f"Armature '{obj.name}' was made for another skeleton. " + RETARGET_MESSAGE)


def _ensure_object_mode(context: bpy.types.Context) -> None:
    obj = context.view_layer.objects.active
    if obj is not None and obj.mode != 'OBJECT':
        bpy.ops.object.mode_set(mode='OBJECT')


def build_armature(context: bpy.types.Context, result: MotionResult, name: str) -> bpy.types.Object:
    """A new armature object (at the origin) with one bone per joint, linked to the active collection."""
    layout = rig.bone_layout(result.joint_names, result.parents, result.rest_offsets)
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    try:
        arm[SKELETON_PROP] = ",".join(result.joint_names)
        arm.display_type = 'STICK'
        collection = context.collection or context.scene.collection
        collection.objects.link(obj)
        _ensure_object_mode(context)
        for o in context.selected_objects:
            o.select_set(False)
        context.view_layer.objects.active = obj
        obj.select_set(True)
        bpy.ops.object.mode_set(mode='EDIT')
        bones = []
        for j, bname in enumerate(layout.names):
            eb = arm.edit_bones.new(bname)
            eb.head = layout.heads[j].tolist()
            eb.tail = layout.tails[j].tolist()
            eb.align_roll(layout.z_axes[j].tolist())
            bones.append(eb)
        for j, p in enumerate(layout.parents):
            if p >= 0:
                bones[j].parent = bones[p]
                bones[j].use_connect = bool(np.allclose(layout.tails[p], layout.heads[j], atol=1e-6))
        bpy.ops.object.mode_set(mode='OBJECT')
    except Exception:
        if context.view_layer.objects.active is obj and obj.mode != 'OBJECT':
            bpy.ops.object.mode_set(mode='OBJECT')
        bpy.data.objects.remove(obj)
        bpy.data.armatures.remove(arm)
        raise
    return obj


def _fcurves(action: bpy.types.Action, slot: Any, path: str, count: int, group: str) -> list[bpy.types.FCurve]:
    """New F-curves for ``path`` in ``group``: 4.4+ slotted actions (channelbag) or the 4.2 API."""
    if hasattr(action, "layers"):  # Blender 4.4+: layered actions; Action.fcurves is gone in 5.0
        from bpy_extras import anim_utils

        bag = anim_utils.action_get_channelbag_for_slot(action, slot)
        if bag is None:
            layer = action.layers[0] if action.layers else action.layers.new("Layer")
            strip = layer.strips[0] if layer.strips else layer.strips.new(type='KEYFRAME')
            bag = strip.channelbag(slot, ensure=True)
        grp = bag.groups.get(group) or bag.groups.new(group)
        curves = [bag.fcurves.new(path, index=i) for i in range(count)]
        for fc in curves:
            fc.group = grp
        return curves
    return [action.fcurves.new(path, index=i, action_group=group) for i in range(count)]


_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def _write_keys(fc: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray) -> None:
    n = len(frames)
    fc.keyframe_points.add(n)
    co = np.empty((n, 2), dtype=np.float32)
    co[:, 0] = frames
    co[:, 1] = values
    fc.keyframe_points.foreach_set("co", co.ravel())
    fc.keyframe_points.foreach_set("interpolation", [_LINEAR] * n)
    fc.update()


CONTACT_PREFIX = "vm_contact_"
CONFIDENCE_PREFIX = "vm_conf_"


def key_channels(obj: bpy.types.Object, action: bpy.types.Action, slot: object, result: MotionResult,
                 frames: np.ndarray) -> list[str]:
    """Foot contacts (0/1, constant interpolation) and per-joint confidence as keyed custom properties
    of the armature object, for clean-up. Returns the property names it added to ``obj``."""
    channels: list[tuple[str, np.ndarray]] = []
    if result.foot_contacts is not None:
        channels += [(CONTACT_PREFIX + n, result.foot_contacts[:, c]) for c, n in enumerate(result.contact_names)]
    if result.joint_confidence is not None:
        channels += [(CONFIDENCE_PREFIX + n, result.joint_confidence[:, j]) for j, n in enumerate(result.joint_names)]
    added = []
    for prop, values in channels:
        if prop not in obj.keys():
            obj[prop] = 0.0
            added.append(prop)
        fc = _fcurves(action, slot, f'["{bpy.utils.escape_identifier(prop)}"]', 1, "Video Mocap Channels")[0]
        _write_keys(fc, frames, values)
        if prop.startswith(CONTACT_PREFIX):
            fc.keyframe_points.foreach_set("interpolation", [_CONSTANT] * len(frames))
    return added


_CONSTANT = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["CONSTANT"].value


def write_action(obj: bpy.types.Object, result: MotionResult, name: str, frames: np.ndarray) -> bpy.types.Action:
    """A new action with rotation_quaternion keys per bone and location keys on the root bone."""
    bones = obj.data.bones
    # Rest rotation B_j of each bone in armature space, read once (Final = EditBone * PoseBone).
    rest_q = np.array([list(bones[n].matrix_local.to_quaternion()) for n in result.joint_names])   # (J, 4)
    root_head = np.array(bones[result.joint_names[0]].head_local)                                  # (3,)
    q_basis, root_loc = rig.pose_basis(result.rotations, result.root_translation, rest_q, root_head)

    action = bpy.data.actions.new(name)
    props_before = set(obj.keys())
    try:
        slot = action.slots.new(id_type='OBJECT', name=obj.name) if hasattr(action, "slots") else None
        for j, bname in enumerate(result.joint_names):
            esc = bpy.utils.escape_identifier(bname)
            for i, fc in enumerate(_fcurves(action, slot, f'pose.bones["{esc}"].rotation_quaternion', 4, bname)):
                _write_keys(fc, frames, q_basis[:, j, i])
            if j == 0:
                for i, fc in enumerate(_fcurves(action, slot, f'pose.bones["{esc}"].location', 3, bname)):
                    _write_keys(fc, frames, root_loc[:, i])
        key_channels(obj, action, slot, result, frames)   # contacts and confidence, for clean-up
    except Exception:
        bpy.data.actions.remove(action)
        for prop in set(obj.keys()) - props_before:
            del obj[prop]
        raise
    action["video_mocap_video"] = result.video_path
    return action


def apply_result(context: bpy.types.Context, result: MotionResult, *, name: str,
                 target: bpy.types.Object | None = None, set_scene: bool = True) -> bpy.types.Object:
    """Create (or reuse ``target``) an armature animated by ``result``. Returns the armature object."""
    check_target(target, result)
    scene = context.scene
    if set_scene:
        fps, fps_base = rig.scene_fps(result.fps)
    else:
        fps, fps_base = scene.render.fps, scene.render.fps_base
    frames = rig.key_frames(result.times, fps / fps_base, scene.frame_start)
    if not (np.all(np.isfinite(frames)) and frames[-1] <= MAX_SCENE_FRAME):
        raise ApplyError(f"The motion does not fit in Blender's frame range (it would end at frame {frames[-1]:.0f})")

    obj = target if target is not None else build_armature(context, result, name)
    created = target is None
    try:
        action = write_action(obj, result, name, frames)
        for pb in obj.pose.bones:
            pb.rotation_mode = 'QUATERNION'
        ad = obj.animation_data or obj.animation_data_create()
        old = ad.action
        if old is not None and old.users == 1 and not old.use_fake_user:
            old.use_fake_user = True   # keep the user's previous action alive when we replace it
        ad.action = action
        if hasattr(ad, "action_slot"):
            ad.action_slot = action.slots[0]
    except Exception:
        if created:
            arm = obj.data
            bpy.data.objects.remove(obj)
            bpy.data.armatures.remove(arm)
        raise
    if set_scene:
        scene.render.fps, scene.render.fps_base = fps, fps_base
        scene.frame_end = int(np.ceil(frames[-1]))
    return obj


def action_name(video: str) -> str:
    return Path(video).stem or "Motion"
