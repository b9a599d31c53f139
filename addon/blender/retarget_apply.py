"""Put a result on a user's rig (bpy half; the maths is ``core.retarget``).

Validates everything (map, bones, leg length) before touching the scene; writes a NEW action (the
rig's previous action is kept, with a fake user, never edited) with rotation keys on the mapped bones
and the root motion where the user chose. Anything created is removed again if a step fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..core import retarget, rig, rigify_ik
from ..core.result import MotionResult
from . import rigify_legs
from .apply import CONFIDENCE_PREFIX, CONTACT_PREFIX, ApplyError, _fcurves, _write_keys, key_channels  # noqa: F401


@dataclass(frozen=True)
class RetargetOptions:
    preset: str = "auto"           # a preset name, "auto", or "custom" (then map_file)
    map_file: str = ""
    root_motion: str = "bone"      # bone | object | in_place
    scale: float = 0.0             # 0 = from the leg lengths
    # not retargeting as such, but options of every import that travel with these
    body_mesh: bool = True         # build the body mesh (when the file has one) on a NEW armature
    foot_lock: float = 1.0         # 0..1: contact-frame feet held in place by IK on the legs (core.footlock)
    rigify_leg_ik: bool = False    # Rigify target: key the legs' IK controls from the FK pose, IK_FK = 0 (rigify_legs)


def _copied_from(obj: bpy.types.Object, pb: bpy.types.PoseBone, driven: set[str]) -> str:
    """The bone whose pose ``pb`` copies whole, or "": its last enabled constraint is a Copy Transforms of
    a bone of the same armature, world to world, replacing, at full, undriven influence."""
    cons = [c for c in pb.constraints if c.enabled and c.influence > 0.0]
    if not cons:
        return ""
    c = cons[-1]
    if (c.type != 'COPY_TRANSFORMS' or c.target != obj or not c.subtarget or c.influence < 1.0
            or c.owner_space != 'WORLD' or c.target_space != 'WORLD' or c.mix_mode != 'REPLACE'
            or f'pose.bones["{bpy.utils.escape_identifier(pb.name)}"].constraints["{bpy.utils.escape_identifier(c.name)}"].influence' in driven):
        return ""
    return str(c.subtarget)


def target_rig(obj: bpy.types.Object) -> retarget.TargetRig:
    """The rig's rest pose, with its effective hierarchy: a bone that copies another bone's whole pose
    (Rigify's ``ORG-shoulder.L`` copies the ``shoulder.L`` control) and has the same rest matrix counts
    as that bone's child (``Final = Final_copied · (B_copied⁻¹ B)`` holds exactly then), so the bones
    below it are solved against the motion they really get."""
    bones = obj.data.bones
    names = tuple(b.name for b in bones)
    idx = {n: i for i, n in enumerate(names)}
    parents = [idx[b.parent.name] if b.parent else -1 for b in bones]
    ml = np.empty(len(bones) * 16, dtype=np.float32)
    bones.foreach_get("matrix_local", ml)
    mats = ml.reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)    # foreach_get is column-major
    heads = np.empty(len(bones) * 3, dtype=np.float32)
    bones.foreach_get("head_local", heads)
    if obj.pose is not None:
        ad = obj.animation_data
        driven = {d.data_path for d in ad.drivers} if ad is not None else set()
        for pb in obj.pose.bones:
            b = idx[pb.name]
            src = idx.get(_copied_from(obj, pb, driven), -1)
            if src < 0 or src == b or np.abs(mats[src] - mats[b]).max() > 1e-4:
                continue
            a = src   # no cycles: the copied bone must not hang below this one
            while a >= 0 and a != b:
                a = parents[a]
            if a < 0:
                parents[b] = src
    return retarget.TargetRig(names, tuple(parents), mats[:, :3, :3], heads.reshape(-1, 3).astype(np.float64))


def _rotation_part(obj: bpy.types.Object) -> np.ndarray:
    """Armature axes in world coordinates (rotation of matrix_world, scale removed)."""
    return np.array(obj.matrix_world.to_quaternion().to_matrix(), dtype=np.float64)


def resolve_map(obj: bpy.types.Object, result: MotionResult, opts: RetargetOptions) -> retarget.ResolvedMap:
    """The bone map for ``obj``: preset, custom file or detection. Raises ApplyError with the reason."""
    names = [b.name for b in obj.data.bones]
    try:
        if opts.preset == "custom" or (opts.map_file and opts.preset == "auto"):
            if not opts.map_file:
                raise retarget.RetargetError("Choose a bone map file for the custom map")
            return retarget.resolve(retarget.load_map(bpy.path.abspath(opts.map_file)), names, result.joint_names)
        if opts.preset == "auto":
            return retarget.detect(names, result.joint_names)
        maps = retarget.presets()
        if opts.preset not in maps:
            raise retarget.RetargetError(f"Unknown bone map preset '{opts.preset}'")
        return retarget.resolve(maps[opts.preset], names, result.joint_names)
    except retarget.RetargetError as e:
        raise ApplyError(f"Cannot retarget onto '{obj.name}': {e}") from e


def _new_action(name: str, obj: bpy.types.Object) -> tuple[bpy.types.Action, object]:
    action = bpy.data.actions.new(name)
    slot = action.slots.new(id_type='OBJECT', name=obj.name) if hasattr(action, "slots") else None
    return action, slot


def _assign(obj: bpy.types.Object, action: bpy.types.Action) -> None:
    ad = obj.animation_data or obj.animation_data_create()
    old = ad.action
    if old is not None and old.users == 1 and not old.use_fake_user:
        old.use_fake_user = True   # the user's previous action stays alive, untouched
    ad.action = action
    if hasattr(ad, "action_slot"):
        ad.action_slot = action.slots[0]




def apply_retarget(context: bpy.types.Context, result: MotionResult, target: bpy.types.Object, *,
                   name: str, options: RetargetOptions = RetargetOptions(),
                   set_scene: bool = True) -> bpy.types.Object:
    """Animate the user's armature ``target`` with ``result``. Returns ``target``."""
    if target.type != 'ARMATURE':
        raise ApplyError(f"'{target.name}' is not an armature")
    if options.root_motion not in retarget.ROOT_MODES:
        raise ApplyError(f"Unknown root motion mode '{options.root_motion}'")
    mapping = resolve_map(target, result, options)
    try:
        out = retarget.retarget(result.joint_names, result.parents, result.rest_offsets, result.rotations,
                                result.root_translation, target_rig(target), mapping,
                                scale=options.scale or None, world_rot=_rotation_part(target))
    except retarget.RetargetError as e:
        raise ApplyError(f"Cannot retarget onto '{target.name}': {e}") from e

    scene = context.scene
    fps, fps_base = rig.scene_fps(result.fps) if set_scene else (scene.render.fps, scene.render.fps_base)
    frames = rig.key_frames(result.times, fps / fps_base, scene.frame_start)
    offset = out.root_offset                                       # (T, 3) armature space
    mw = np.array(target.matrix_world, dtype=np.float64)
    bone_loc = out.root_location
    obj_loc = None
    path_loc = None
    if options.root_motion == "object":
        bone_loc = np.zeros_like(bone_loc)
        obj_loc = np.array(target.location)[None] + offset @ mw[:3, :3].T   # parentless armature
    elif options.root_motion == "in_place":
        world = offset @ mw[:3, :3].T                                # world displacement
        horiz = world * np.array([1.0, 1.0, 0.0])
        vertical = (world - horiz) @ np.linalg.inv(mw[:3, :3]).T     # back to armature space
        bone_loc = vertical @ np.array(target.data.bones[out.root_bone].matrix_local)[:3, :3]
        path_loc = mw[:3, 3][None] + horiz

    created: list[bpy.types.ID] = []
    added_props: list[str] = []
    leg_ik = options.rigify_leg_ik and bool(rigify_legs.leg_sides(target))
    ik_parents = {rigify_ik.leg_names(s)["parent"] for s in rigify_legs.leg_sides(target)} if leg_ik else set()
    modes = {b: target.pose.bones[b].rotation_mode
             for b in (*out.bones, *(rigify_legs.ik_bones(target) if leg_ik else ()))}
    try:
        action, slot = _new_action(name, target)
        created.append(action)
        for k, bname in enumerate(out.bones):
            esc = bpy.utils.escape_identifier(bname)
            for i, fc in enumerate(_fcurves(action, slot, f'pose.bones["{esc}"].rotation_quaternion', 4, bname)):
                _write_keys(fc, frames, out.q_basis[:, k, i])
        esc = bpy.utils.escape_identifier(out.root_bone)
        for i, fc in enumerate(_fcurves(action, slot, f'pose.bones["{esc}"].location', 3, out.root_bone)):
            _write_keys(fc, frames, bone_loc[:, i])
        for bname, props in mapping.map.constants.items():   # e.g. Rigify IK_FK = 1 (FK), keyed
            pb = target.pose.bones.get(mapping.prefix + bname)
            for prop, value in props.items():
                if pb is not None and pb.name in ik_parents and prop == "IK_FK":
                    value = 0.0                                # the legs in IK (rigify_legs keys the controls)
                if pb is not None and prop in pb.keys():
                    dp = f'pose.bones["{bpy.utils.escape_identifier(pb.name)}"]["{bpy.utils.escape_identifier(prop)}"]'
                    _write_keys(_fcurves(action, slot, dp, 1, pb.name)[0], frames[:1], np.array([value]))
                    if prop == "IK_FK":
                        ik_parents.discard(pb.name)
        for bname in sorted(ik_parents):   # a map without the Rigify constants: the legs still switch to IK
            if "IK_FK" in target.pose.bones[bname].keys():
                dp = f'pose.bones["{bpy.utils.escape_identifier(bname)}"]["IK_FK"]'
                _write_keys(_fcurves(action, slot, dp, 1, bname)[0], frames[:1], np.array([0.0]))
        added_props = key_channels(target, action, slot, result, frames)
        if obj_loc is not None:
            for i, fc in enumerate(_fcurves(action, slot, "location", 3, "Object Transforms")):
                _write_keys(fc, frames, obj_loc[:, i])
        if path_loc is not None:
            empty = bpy.data.objects.new(f"{name}_path", None)
            created.append(empty)
            empty.empty_display_type = 'ARROWS'
            (context.collection or scene.collection).objects.link(empty)
            paction, pslot = _new_action(f"{name}_path", empty)
            created.append(paction)
            for i, fc in enumerate(_fcurves(paction, pslot, "location", 3, "Object Transforms")):
                _write_keys(fc, frames, path_loc[:, i])
            _assign(empty, paction)
        action["video_mocap_video"] = result.video_path
        action["video_mocap_map"] = mapping.map.name
        action["video_mocap_scale"] = out.scale
        for b in out.bones:
            target.pose.bones[b].rotation_mode = 'QUATERNION'
        _assign(target, action)
        if leg_ik:   # needs the FK keys evaluated: after the action is assigned
            rigify_legs.key_leg_ik(context, target, action, slot, frames, result, options.foot_lock)
    except Exception:
        for prop in added_props:
            del target[prop]
        for b, m in modes.items():
            target.pose.bones[b].rotation_mode = m
        for idb in reversed(created):
            if isinstance(idb, bpy.types.Object):
                bpy.data.objects.remove(idb)
            else:
                bpy.data.actions.remove(idb)
        raise
    if set_scene:
        scene.render.fps, scene.render.fps_base = fps, fps_base
        scene.frame_end = int(np.ceil(frames[-1]))
    return target
