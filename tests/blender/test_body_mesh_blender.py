"""The body mesh inside Blender: ``import_anim.video_mocap_result`` builds the result's body, skinned to
the new armature, and the evaluated mesh follows the armature (issue 11)."""

from __future__ import annotations

import importlib
import sys
import time

import numpy as np
import pytest

from conftest import MODULE

import bpy  # noqa: E402  (conftest set HOME first)

import fake_engine  # noqa: E402
import hostile  # noqa: E402

pytest.importorskip("anny")

# Evaluated (Armature modifier) vertices vs linear blend skinning of the result's FK in numpy: float32
# vertices, weights rounded to 1/1024 (addon/core/body.py).
SKIN_TOL_M = 1e-3


@pytest.fixture(scope="module")
def mesh_result(tmp_path_factory):
    from engine import skeleton as sk
    from engine.body_mesh import mesh_fields
    from engine.result import write_result

    path = tmp_path_factory.mktemp("mesh") / "walk.npz"
    data = fake_engine.make_result(path, frames=30, seed=7)
    data.update(mesh_fields(np.asarray(data["rest_offsets"]), ("height",), (0.5,)))
    write_result(path, data)
    assert sk.JOINT_NAMES == tuple(str(n) for n in data["joint_names"])
    return path, data


def _evaluated(obj) -> np.ndarray:
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    me = ev.to_mesh()
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    mw = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ mw[:3, :3].T + mw[:3, 3]


def _lbs(data, t: int) -> np.ndarray:
    """Linear blend skinning of the mesh by the result's frame t (FK of rotations, root_translation)."""
    from scipy.spatial.transform import Rotation

    from engine import skeleton as sk

    rest = np.asarray(data["rest_offsets"], np.float64)
    q = np.asarray(data["rotations"][t], np.float64)                                   # (J, 4) wxyz
    R = Rotation.from_quat(q, scalar_first=True).as_matrix()[None]                     # (1, J, 3, 3)
    Rw, P = sk.forward_kinematics(R, np.asarray(data["root_translation"][t:t + 1], np.float64), rest)
    p0 = sk.rest_positions(rest)
    v = np.asarray(data["mesh_vertices"], np.float64)
    idx, w = data["mesh_weight_joints"], np.asarray(data["mesh_weights"], np.float64)
    per = np.einsum("vkab,vkb->vka", Rw[0][idx], v[:, None] - p0[idx]) + P[0][idx]     # (V, K, 3)
    return np.einsum("vk,vki->vi", w, per)


def test_body_mesh_follows_armature(blank, mesh_result):
    path, data = mesh_result
    t0 = time.perf_counter()
    assert bpy.ops.import_anim.video_mocap_result(filepath=str(path)) == {'FINISHED'}
    elapsed = time.perf_counter() - t0
    arm = bpy.data.objects["fake"]
    body = bpy.data.objects["fake_body"]
    assert body.type == 'MESH' and body.parent == arm
    assert body.modifiers[0].type == 'ARMATURE' and body.modifiers[0].object == arm
    assert {g.name for g in body.vertex_groups} == set(arm.data.bones.keys())
    assert len(body.data.vertices) == len(data["mesh_vertices"])
    assert len(body.data.polygons) == len(data["mesh_faces"])
    assert bpy.context.view_layer.objects.active == arm        # the armature stays the active object
    print(f"import with body mesh: {elapsed:.2f} s")

    hand = (data["mesh_weight_joints"][:, 0] == 22) & (data["mesh_weights"][:, 0] > 0.99)   # left_hand
    assert hand.sum() > 100
    T = len(data["times"])
    start = bpy.context.scene.frame_start
    worst = 0.0
    hand_moves = []
    for t in (0, T // 3, 2 * T // 3, T - 1):
        bpy.context.scene.frame_set(start + t)
        got = _evaluated(body)
        err = np.linalg.norm(got - _lbs(data, t), axis=1)
        worst = max(worst, float(err.max()))
        # the hand's vertices keep their place relative to the left hand joint (rigid part)
        joint = np.asarray(data["joints_world"][t, 22], np.float64)
        hand_moves.append((got[hand].mean(0), joint))
    print(f"evaluated body vs numpy skinning: worst {worst * 1000:.3f} mm over {hand.size} vertices")
    assert worst < SKIN_TOL_M
    (c0, j0), *rest = hand_moves
    for c, j in rest:
        assert np.linalg.norm(c - j) == pytest.approx(np.linalg.norm(c0 - j0), abs=SKIN_TOL_M)
        assert np.linalg.norm(j - j0) > 0.02                      # and the hand did move


def test_no_body_mesh_when_off_or_retargeting(blank, mesh_result):
    path, _ = mesh_result
    meshes = len(bpy.data.meshes)
    assert bpy.ops.import_anim.video_mocap_result(filepath=str(path), body_mesh=False) == {'FINISHED'}
    assert len(bpy.data.meshes) == meshes and "fake_body" not in bpy.data.objects
    # re-keying an existing Video Mocap armature adds no second body
    assert bpy.ops.import_anim.video_mocap_result(filepath=str(path), target="fake") == {'FINISHED'}
    assert len(bpy.data.meshes) == meshes


def _scene_state() -> tuple:
    return (sorted(o.name for o in bpy.data.objects), sorted(m.name for m in bpy.data.meshes),
            sorted(a.name for a in bpy.data.armatures), sorted(a.name for a in bpy.data.actions))


def test_failed_body_leaves_scene_untouched(blank, mesh_result, monkeypatch):
    path, _ = mesh_result
    before = _scene_state()
    core_body = sys.modules[f"{MODULE}.addon.core.body"]

    def broken(*a, **k):
        raise RuntimeError("weights exploded")

    monkeypatch.setattr(core_body, "weight_batches", broken)
    with pytest.raises(RuntimeError, match="weights exploded"):
        bpy.ops.import_anim.video_mocap_result(filepath=str(path))
    assert _scene_state() == before


def test_hostile_mesh_is_refused_with_a_message(blank, mesh_result, tmp_path):
    path, data = mesh_result
    before = _scene_state()
    for name in ("mesh_face_out_of_range", "mesh_joint_out_of_range", "mesh_incomplete"):
        bad = hostile.write_raw(tmp_path / f"{name}.npz", hostile.REFUSED[name](hostile.load(path)))
        with pytest.raises(RuntimeError, match="body mesh"):
            bpy.ops.import_anim.video_mocap_result(filepath=str(bad))
        assert _scene_state() == before
    importlib.invalidate_caches()
