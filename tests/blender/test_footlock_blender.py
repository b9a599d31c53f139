"""Planted feet as keys (issue 11): ``import_anim.video_mocap_result(foot_lock=...)`` keeps contact-frame
feet in place on the imported armature, and strength 0 leaves the motion as solved."""

from __future__ import annotations

import numpy as np

from conftest import MODULE  # noqa: F401  (the extension fixture)

import bpy  # noqa: E402  (conftest set HOME first)

import fake_engine  # noqa: E402
from test_footlock_core import LEFT_ANKLE, LEFT_FOOT, RIGHT_ANKLE, RIGHT_FOOT, sliding_result  # noqa: E402

PLANTED_TOL_M = 5e-3      # the bound: contact-frame feet move less than 5 mm
UNCHANGED_TOL_M = 1e-4    # strength 0: bone heads = the file's joints_world (float32 keys)


def _write(tmp_path):
    from engine.result import write_result

    r = sliding_result(tmp_path)
    data = fake_engine.make_result(tmp_path / "base.npz", frames=len(r.times), seed=3)
    data.update(rotations=r.rotations, root_translation=r.root_translation, joints_world=r.joints_world,
                contact_names=np.array(r.contact_names), foot_contacts=r.foot_contacts > 0.5)
    path = tmp_path / "planted.npz"
    write_result(path, data)
    return path, r


def _heads(obj, joints) -> np.ndarray:
    scene = bpy.context.scene
    out = []
    for t in range(scene.frame_end - scene.frame_start + 1):
        scene.frame_set(scene.frame_start + t)
        out.append([list(obj.matrix_world @ obj.pose.bones[j].head) for j in joints])
    return np.array(out)


def test_contact_feet_stay_put(blank, tmp_path):
    path, r = _write(tmp_path)
    names = ("left_ankle", "left_foot", "right_ankle", "right_foot")
    assert bpy.ops.import_anim.video_mocap_result(filepath=str(path), foot_lock=0.0) == {'FINISHED'}
    free = _heads(bpy.data.objects["fake"], names)
    assert np.abs(free - r.joints_world[:, [LEFT_ANKLE, LEFT_FOOT, RIGHT_ANKLE, RIGHT_FOOT]]).max() < UNCHANGED_TOL_M

    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_anim.video_mocap_result(filepath=str(path), foot_lock=1.0) == {'FINISHED'}
    held = _heads(bpy.data.objects["fake"], names)
    c = r.foot_contacts > 0.5
    moved = {}
    for k, n in enumerate(names):
        for s, e in _runs(c[:, k]):
            if n.endswith("foot") and c[s:e, k - 1].any() and not c[s:e, k - 1].all():
                # a ball run that starts with the heel down: held from heel-off on (the run's mean target)
                s = s + int(np.flatnonzero(~c[s:e, k - 1])[0])
            p = held[s:e, k]
            moved[(n, s)] = float(np.linalg.norm(p - p[0], axis=1).max())
            free_move = float(np.linalg.norm(free[s:e, k] - free[s, k], axis=1).max())
            assert free_move > 0.01, (n, s, free_move)        # unlocked, this foot slides
    print("contact-frame foot movement (mm):", {k: round(v * 1000, 3) for k, v in moved.items()})
    assert max(moved.values()) < PLANTED_TOL_M


def _runs(mask):
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def test_foot_lock_is_on_by_default(blank):
    props = bpy.ops.import_anim.video_mocap_result.get_rna_type().properties
    assert props["foot_lock"].default == 1.0 and props["body_mesh"].default


def test_retargeted_mixamo_feet_stay_put(blank, tmp_path):
    """The lock happens on the result before retargeting: a rig with the result's proportions (x1.1,
    random rolls) keeps its contact-frame feet within the same bound (scaled)."""
    import importlib

    from test_retarget_blender import _mixamo_obj

    path, r = _write(tmp_path)
    core_result = importlib.import_module(f"{MODULE}.addon.core.result")
    obj = _mixamo_obj(core_result.read_result(path), prefix="mixamorig:")
    assert bpy.ops.import_anim.video_mocap_result(filepath=str(path), target=obj.name, foot_lock=1.0) == {'FINISHED'}
    held = _heads(obj, ("mixamorig:LeftFoot", "mixamorig:RightFoot"))
    c = r.foot_contacts > 0.5
    worst = 0.0
    for k, col in ((0, 0), (1, 2)):                 # ankle contact runs
        for s, e in _runs(c[:, col]):
            worst = max(worst, float(np.linalg.norm(held[s:e, k] - held[s, k], axis=1).max()))
    print(f"mixamo contact-frame ankle movement: {worst * 1000:.3f} mm")
    assert worst < PLANTED_TOL_M * 1.1


def test_contacts_and_confidence_keyed_on_a_new_armature(blank, tmp_path):
    path, r = _write(tmp_path)
    assert bpy.ops.import_anim.video_mocap_result(filepath=str(path)) == {'FINISHED'}
    obj = bpy.data.objects["fake"]
    scene = bpy.context.scene
    for t in (0, 7, 12, 30, len(r.times) - 1):
        scene.frame_set(scene.frame_start + t)
        for c, n in enumerate(r.contact_names):
            assert obj["vm_contact_" + n] == float(r.foot_contacts[t, c] > 0.5), (n, t)
        assert abs(obj["vm_conf_left_knee"] - float(r.joint_confidence[t, 4])) < 1e-6
