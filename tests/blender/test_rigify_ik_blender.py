"""Rigify legs keyed in IK (issue 11, planted feet as keys): ``rigify_leg_ik=True`` keys ``foot_ik``,
``toe_ik`` and the knee pole ``thigh_ik_target`` from the retargeted FK legs and switches the legs to IK
(``IK_FK = 0``, ``pole_vector = 1``); the feet are held in the rig's own space where the result marks
contact. Off (the default), the import is exactly the FK one."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import MODULE

import bpy  # noqa: E402  (conftest set HOME first)

from test_footlock_blender import PLANTED_TOL_M, _runs, _write  # noqa: E402
from test_retarget_blender import _fcurves_of, _keys, _rigify, _user_action  # noqa: E402

# Without foot lock, the IK legs reproduce the FK legs: ORG/DEF foot heads (Blender's IK solver,
# float32 keys) and the feet's rotation.
FOLLOW_TOL_M = 5e-4
FOLLOW_TOL_DEG = 0.5
# With foot lock 1 a held foot differs from the FK foot by what the FK foot moves over its contact run
# (it is held at the run's mean or where heel-off left it): at most twice that, plus FOLLOW_TOL_M.
BLEND = 4    # core.footlock.BLEND_FRAMES: the lock fades in and out over 4 frames around a contact
FEET = ("ORG-foot.L", "ORG-foot.R", "DEF-foot.L", "DEF-foot.R", "ORG-toe.L", "ORG-toe.R")


def _feet(rig) -> tuple[np.ndarray, np.ndarray]:
    """(T, len(FEET), 3) evaluated heads (world) and (T, len(FEET), 3, 3) rotations over the scene range."""
    scene = bpy.context.scene
    heads, rots = [], []
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)
        m = [rig.matrix_world @ rig.pose.bones[b].matrix for b in FEET]
        heads.append([list(x.translation) for x in m])
        rots.append([np.array(x.to_3x3().normalized()) for x in m])
    return np.array(heads), np.array(rots)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    rel = np.einsum("...ji,...jk->...ik", a, b)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).max())


def _import(path, rig, **kw) -> bpy.types.Action:
    assert bpy.ops.import_anim.video_mocap_result(filepath=str(path), target=rig.name, **kw) == {'FINISHED'}
    return rig.animation_data.action


IK_PATHS = ('pose.bones["foot_ik.L"].location', 'pose.bones["foot_ik.R"].rotation_quaternion',
            'pose.bones["thigh_ik_target.L"].location', 'pose.bones["toe_ik.R"].rotation_quaternion')


def test_rigify_leg_ik_follows_fk_legs(blank, tmp_path):
    """Foot lock 0: with the option the evaluated ORG/DEF feet equal the FK import's over every frame;
    without it the action is the FK import (no IK keys, IK_FK = 1), and the FK keys are the same in both."""
    path, r = _write(tmp_path)
    rig = _rigify()
    fk = _import(path, rig, foot_lock=0.0)
    fk_heads, fk_rots = _feet(rig)
    fk_keys = _keys(fk)
    paths = {fc.data_path for fc in _fcurves_of(fk)}
    assert not any(p in paths for p in IK_PATHS)
    assert rig.pose.bones["thigh_parent.L"]["IK_FK"] == pytest.approx(1.0)

    import time
    t = time.perf_counter()
    ik = _import(path, rig, foot_lock=0.0, rigify_leg_ik=True)
    print(f"import of {len(r.times)} frames onto the Rigify rig with rigify_leg_ik: "
          f"{(time.perf_counter() - t) * 1000:.0f} ms")
    assert ik is not fk
    bpy.context.scene.frame_set(bpy.context.scene.frame_start + 3)
    for s in "LR":
        assert rig.pose.bones[f"thigh_parent.{s}"]["IK_FK"] == pytest.approx(0.0)   # IK
        assert rig.pose.bones[f"thigh_parent.{s}"]["pole_vector"]
    ik_paths = {fc.data_path for fc in _fcurves_of(ik)}
    assert all(p in ik_paths for p in IK_PATHS)
    # the FK keys are the same; only the IK controls and the switches differ
    switches = ('["IK_FK"]', '["pole_vector"]')
    assert ([k for k in _keys(ik) if k[0] in paths and not k[0].endswith(switches)]
            == [k for k in fk_keys if not k[0].endswith(switches)])
    heads, rots = _feet(rig)
    err = np.linalg.norm(heads - fk_heads, axis=-1)
    ang = _angle_deg(rots[:, :4], fk_rots[:, :4])
    print(f"IK vs FK feet (ORG/DEF foot, ORG toe heads): {err.max() * 1000:.4f} mm, foot rotation "
          f"{ang:.4f} deg over {len(heads)} frames")
    assert err.max() < FOLLOW_TOL_M
    assert ang < FOLLOW_TOL_DEG


def test_rigify_leg_ik_plants_feet(blank, tmp_path):
    """Foot lock 1 on the default rig: the IK feet hold still on the contact frames (in the rig's space,
    where the FK legs, retargeted from other proportions, still slide) and otherwise follow the FK feet;
    the user's own action on the rig survives untouched."""
    path, r = _write(tmp_path)
    rig = _rigify()
    user = _user_action(rig, "foot_ik.L")
    user_keys = _keys(user)
    _import(path, rig, foot_lock=1.0)
    fk_heads, _ = _feet(rig)
    _import(path, rig, foot_lock=1.0, rigify_leg_ik=True)
    heads, _ = _feet(rig)
    assert user.name in bpy.data.actions and user.use_fake_user and _keys(user) == user_keys
    c = r.foot_contacts > 0.5
    step = drift = drift_fk = 0.0
    # (column of FEET, contact column, frames): ORG/DEF feet on their ankle-contact runs; the left ORG-toe
    # on its heel-up frames and the last heel-down frame before them (heel-off without a jump)
    held = [(k, col, s, e) for k, col in ((0, 0), (1, 2), (2, 0), (3, 2)) for s, e in _runs(c[:, col])]
    held += [(4, 1, s - 1, e) for s, e in _runs(c[:, 1] & ~c[:, 0])]
    dev = np.linalg.norm(heads - fk_heads, axis=-1)
    for k, col, s, e in held:
        p, q = heads[s:e, k], fk_heads[s:e, k]
        step = max(step, float(np.linalg.norm(np.diff(p, axis=0), axis=1).max()))
        drift = max(drift, float(np.linalg.norm(p - p[0], axis=1).max()))
        slide = float(np.linalg.norm(q - q[0], axis=1).max())       # how far the FK foot moves over the run
        if k < 4:
            drift_fk = max(drift_fk, slide)                             # ankle runs: the FK slide
        assert dev[s:e, k].max() <= 2 * slide + FOLLOW_TOL_M, (FEET[k], s, e)   # held near where FK is
    side_contact = {0: c[:, :2].any(1), 1: c[:, 2:].any(1)}     # FEET alternate .L, .R
    far = {k: np.convolve(side_contact[k % 2], np.ones(2 * BLEND + 3), "same") == 0 for k in range(len(FEET))}
    free = max(float(dev[far[k], k].max()) for k in range(len(FEET)))
    print(f"Rigify IK feet on contact frames: <= {step * 1000:.3f} mm frame to frame, <= {drift * 1000:.3f} mm over "
          f"a run (FK ankles: {drift_fk * 1000:.2f} mm); {free * 1000:.3f} mm from the FK feet away from contacts, "
          f"{dev.max() * 1000:.1f} mm at most (where the FK feet jump at heel-off)")
    assert step < PLANTED_TOL_M and drift < PLANTED_TOL_M / 5
    assert drift_fk > drift + 1e-3          # the FK legs (other proportions than the result's) still slide
    assert free < FOLLOW_TOL_M


def test_rigify_leg_ik_with_custom_map_without_constants(blank, tmp_path):
    """A custom bone map without the preset's IK_FK constants: the option still switches the legs to IK."""
    import importlib
    import json

    path, _ = _write(tmp_path)
    rig = _rigify()
    for side in "LR":
        rig.pose.bones[f"thigh_parent.{side}"]["IK_FK"] = 1.0       # the user left the legs in FK
    retarget = importlib.import_module(f"{MODULE}.addon.core.retarget")
    data = {**retarget.presets()["rigify"].to_json(), "constants": {}}
    (tmp_path / "plain.json").write_text(json.dumps(data))
    action = _import(path, rig, preset="custom", map_file=str(tmp_path / "plain.json"), foot_lock=0.0,
                     rigify_leg_ik=True)
    paths = {fc.data_path for fc in _fcurves_of(action)}
    assert {'pose.bones["foot_ik.L"].location', 'pose.bones["thigh_parent.R"]["IK_FK"]'} <= paths
    bpy.context.scene.frame_set(bpy.context.scene.frame_start + 2)
    assert rig.pose.bones["thigh_parent.L"]["IK_FK"] == pytest.approx(0.0)
    assert rig.pose.bones["thigh_parent.R"]["IK_FK"] == pytest.approx(0.0)
