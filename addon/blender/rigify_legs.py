"""Rigify legs keyed in IK (bpy half; the maths is ``core.rigify_ik``).

Runs inside ``retarget_apply.apply_retarget`` once the FK keys are in the new action and the action is
assigned: one pass over the keyed frames reads the evaluated FK legs and the IK controls' parent-switch
bones, then ``foot_ik``, ``toe_ik`` and ``thigh_ik_target`` get keys and ``pole_vector = 1`` is keyed
on ``thigh_parent`` (``IK_FK = 0`` comes with the map's constants). The scene's frame is put back.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core import rigify_ik
from ..core.result import MotionResult
from .apply import _fcurves, _write_keys


def leg_sides(obj: bpy.types.Object) -> list[str]:
    """The sides ("L", "R") whose Rigify leg has FK and IK controls (generated rig)."""
    have = obj.pose.bones
    return [s for s, _ in rigify_ik.SIDES
            if all(rigify_ik.leg_names(s)[k] in have for k in rigify_ik.REQUIRED)]


def ik_bones(obj: bpy.types.Object) -> list[str]:
    """Bones whose rotation channels the IK keys use (their rotation mode becomes quaternion)."""
    out = []
    for s in leg_sides(obj):
        n = rigify_ik.leg_names(s)
        out += [b for b in (n["foot_ik"], n["toe_ik"]) if b in obj.pose.bones]
    return out


def _rel(obj: bpy.types.Object, name: str) -> np.ndarray:
    b = obj.data.bones[name]
    rest = np.array(b.matrix_local, dtype=np.float64)
    return rest if b.parent is None else np.linalg.inv(np.array(b.parent.matrix_local, dtype=np.float64)) @ rest


def _evaluate(context: bpy.types.Context, obj: bpy.types.Object, frames: np.ndarray,
              names: list[str]) -> np.ndarray:
    """(T, len(names), 4, 4) evaluated pose-bone matrices (armature space) at the scene frames ``frames``."""
    scene = context.scene
    bones = obj.pose.bones
    index = {pb.name: i for i, pb in enumerate(bones)}
    pick = np.array([index[n] for n in names])
    buf = np.empty(len(bones) * 16, dtype=np.float32)
    out = np.empty((len(frames), len(names), 4, 4))
    current = (scene.frame_current, scene.frame_subframe)
    try:
        for t, f in enumerate(frames):
            whole = int(np.floor(f))
            scene.frame_set(whole, subframe=float(f - whole))
            bones.foreach_get("matrix", buf)
            out[t] = buf.reshape(-1, 4, 4)[pick].transpose(0, 2, 1)       # foreach_get is column-major
    finally:
        scene.frame_set(current[0], subframe=current[1])
    return out


def key_leg_ik(context: bpy.types.Context, obj: bpy.types.Object, action: bpy.types.Action, slot: object,
               frames: np.ndarray, result: MotionResult, strength: float) -> list[str]:
    """Key the IK controls of both legs from the evaluated FK legs; the feet planted by ``strength`` where
    ``result`` marks contact. Returns the sides keyed ("L", "R")."""
    sides = leg_sides(obj)
    if not sides:
        return []
    contact = ({n: result.foot_contacts[:, c] > 0.5 for c, n in enumerate(result.contact_names)}
               if result.foot_contacts is not None else {})
    wanted: list[str] = []
    for s in sides:
        n = rigify_ik.leg_names(s)
        wanted += [n["thigh_fk"], n["shin_fk"], n["foot_fk"], n["foot_ik"], n["ik_foot"], n["pole"],
                   obj.data.bones[n["foot_ik"]].parent.name, obj.data.bones[n["pole"]].parent.name]
        if n["toe_fk"] in obj.pose.bones and n["toe_ik"] in obj.pose.bones:
            wanted += [n["toe_fk"], n["toe_ik"], obj.data.bones[n["toe_ik"]].parent.name]
    wanted = list(dict.fromkeys(wanted))
    mats = _evaluate(context, obj, frames, wanted)
    at = {b: mats[:, i] for i, b in enumerate(wanted)}
    for s, side in rigify_ik.SIDES:
        if s not in sides:
            continue
        n = rigify_ik.leg_names(s)
        toe = n["toe_fk"] in at and n["toe_ik"] in at
        bones = obj.data.bones
        pose = rigify_ik.LegPose(
            thigh=at[n["thigh_fk"]], knee=at[n["shin_fk"]][:, :3, 3], foot=at[n["foot_fk"]],
            toe=at[n["toe_fk"]] if toe else None, foot_ik=at[n["foot_ik"]], ik_foot=at[n["ik_foot"]],
            foot_ik_parent=at[bones[n["foot_ik"]].parent.name],
            toe_ik_parent=at[bones[n["toe_ik"]].parent.name] if toe else None,
            pole_parent=at[bones[n["pole"]].parent.name],
            foot_ik_rel=_rel(obj, n["foot_ik"]), toe_ik_rel=_rel(obj, n["toe_ik"]) if toe else None,
            pole_rel=_rel(obj, n["pole"]), thigh_rest=np.array(bones[n["thigh_fk"]].matrix_local, dtype=np.float64),
            knee_rest=np.array(bones[n["shin_fk"]].head_local, dtype=np.float64),
            pole_rest=np.array(bones[n["pole"]].head_local, dtype=np.float64))
        keys = rigify_ik.solve_leg(pose, contact.get(f"{side}_ankle"), contact.get(f"{side}_foot"), strength)
        channels = [(n["foot_ik"], "location", keys.foot_ik_location),
                    (n["foot_ik"], "rotation_quaternion", keys.foot_ik_quaternion),
                    (n["pole"], "location", keys.pole_location)]
        if keys.toe_ik_quaternion is not None:
            channels.append((n["toe_ik"], "rotation_quaternion", keys.toe_ik_quaternion))
        for bone, prop, values in channels:
            dp = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}'
            for i, fc in enumerate(_fcurves(action, slot, dp, values.shape[1], bone)):
                _write_keys(fc, frames, values[:, i])
        parent = obj.pose.bones[n["parent"]]
        if "pole_vector" in parent.keys():   # use the pole control (a bool property, keyed as 1)
            dp = f'pose.bones["{bpy.utils.escape_identifier(parent.name)}"]["pole_vector"]'
            _write_keys(_fcurves(action, slot, dp, 1, parent.name)[0], frames[:1], np.array([1.0]))
    for b in ik_bones(obj):
        obj.pose.bones[b].rotation_mode = 'QUATERNION'
    return sides
