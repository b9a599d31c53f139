"""Retargeting maths and bone maps (addon/core/retarget.py) without Blender."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from addon.core import retarget, rig
from addon.core.result import read_result

import fake_engine  # noqa: E402  (tests/ is on pytest.ini's pythonpath)

# Heads of mapped bones vs the scaled result joints, for a rig with the result's proportions.
HEAD_TOL_M = 1e-6


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = tmp_path_factory.mktemp("res") / "walk.npz"
    fake_engine.make_result(path, frames=40, seed=5)
    return read_result(path)


def _a_posed_rest(r, angle_deg: float = 40.0) -> np.ndarray:
    """The result's rest joints with the arms lowered by ``angle_deg`` (an A-pose)."""
    pos = rig.rest_positions(r.rest_offsets, r.parents)
    idx = {n: i for i, n in enumerate(r.joint_names)}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        R = Rotation.from_euler("y", sign * angle_deg, degrees=True).as_matrix()
        pivot = pos[idx[f"{side}_shoulder"]].copy()
        for part in ("shoulder", "elbow", "wrist", "hand"):
            j = idx[f"{side}_{part}"]
            pos[j] = pivot + R @ (pos[j] - pivot)
    return pos


def _mixamo_rig(r, prefix: str = "mixamorig:", scale: float = 1.1, seed: int = 0):
    """A Mixamo-named rig in an A-pose, ``scale`` times the result's size, random bone rolls, plus
    an unmapped twist bone in each thigh and unmapped finger bones."""
    m = retarget.presets()["mixamo"]
    by_joint = {j: b for b, j in m.bones.items()}
    pos = _a_posed_rest(r) * scale
    names, parents, heads = [], [], []
    bone_of_joint: dict[int, int] = {}
    for j, jn in enumerate(r.joint_names):
        p = r.parents[j]
        pb = bone_of_joint.get(p, -1)
        if jn in ("left_knee", "right_knee"):     # a twist bone half-way down the thigh, unmapped
            names.append(prefix + ("Left" if jn.startswith("left") else "Right") + "UpLegTwist")
            parents.append(pb)
            heads.append(0.5 * (pos[p] + pos[j]))
            pb = len(names) - 1
        names.append(prefix + by_joint.get(jn, f"Extra_{jn}"))   # left_hand/right_hand: not in the map
        parents.append(pb)
        heads.append(pos[j])
        bone_of_joint[j] = len(names) - 1
    rng = np.random.default_rng(seed)
    mats = Rotation.random(len(names), random_state=rng).as_matrix()
    return retarget.TargetRig(tuple(names), tuple(parents), mats, np.array(heads))


def _full_basis(out: retarget.Retargeted, target: retarget.TargetRig) -> np.ndarray:
    T = out.q_basis.shape[0]
    q = np.zeros((T, len(target.names), 4))
    q[..., 0] = 1.0
    for k, b in enumerate(out.bones):
        q[:, target.names.index(b)] = out.q_basis[:, k]
    return q


def test_retarget_a_pose_rig_follows_scaled_joints(result):
    r = result
    target = _mixamo_rig(r)
    mapping = retarget.resolve(retarget.presets()["mixamo"], target.names, r.joint_names)
    assert mapping.prefix == "mixamorig:" and mapping.root == "mixamorig:Hips"
    out = retarget.retarget(r.joint_names, r.parents, r.rest_offsets, r.rotations, r.root_translation,
                            target, mapping)
    assert out.scale == pytest.approx(1.1, rel=1e-9)
    ref = retarget.source_targets(r.joints_world, r.rest_offsets, r.parents, 0, out.scale,
                                  target.rest_heads[0])
    jidx = {n: i for i, n in enumerate(r.joint_names)}
    for b, j in mapping.bones.items():
        err = np.abs(out.heads[:, target.names.index(b)] - ref[:, jidx[j]]).max()
        assert err < HEAD_TOL_M, (b, err)
    # Blender's own composition (Final = EditBone * PoseBone) of the keyed channels gives the same heads
    loc = np.zeros((r.frames, 3))
    loc[:] = out.root_location
    blender = rig.posed_heads(_full_basis(out, target), loc, retarget.matrix_to_quat(target.rest_mats),
                              target.rest_heads, target.parents)
    assert np.abs(blender - out.heads).max() < 1e-9
    # without the rest alignment (A-pose arms taken as T-pose) the hands would be far off
    assert np.abs(out.heads[:, target.names.index("mixamorig:LeftHand")]
                  - ref[:, jidx["left_wrist"]]).max() < HEAD_TOL_M
    assert np.all(np.sum(out.q_basis[1:] * out.q_basis[:-1], axis=-1) >= 0)


def test_rest_alignment_t_pose_from_a_pose(result):
    """Identity rotations (the result's T-pose rest) raise the A-posed arms of the rig to a T-pose."""
    r = result
    target = _mixamo_rig(r, prefix="")
    mapping = retarget.resolve(retarget.presets()["mixamo"], target.names, r.joint_names)
    assert mapping.prefix == ""
    rest = rig.rest_positions(r.rest_offsets, r.parents)
    still = retarget.retarget(r.joint_names, r.parents, r.rest_offsets,
                              np.tile([1.0, 0, 0, 0], (2, len(r.joint_names), 1)), np.tile(rest[0], (2, 1)),
                              target, mapping)
    i = {n: target.names.index(n) for n in ("LeftArm", "LeftHand", "RightHand", "LeftUpLeg", "LeftFoot")}
    h = still.heads[0]
    assert abs(h[i["LeftHand"], 2] - h[i["LeftArm"], 2]) < 1e-9                  # arm horizontal
    assert target.rest_heads[i["LeftHand"], 2] < target.rest_heads[i["LeftArm"], 2] - 0.2   # was an A-pose
    ref = retarget.source_targets(rest[None], r.rest_offsets, r.parents, 0, still.scale, target.rest_heads[0])[0]
    assert np.abs(h[i["RightHand"]] - ref[r.joint_names.index("right_wrist")]).max() < 1e-9
    # the legs were already like the source's: they keep their rest pose
    assert np.abs(h[i["LeftFoot"]] - target.rest_heads[i["LeftFoot"]]).max() < 1e-9


def test_matrix_to_quat_matches_scipy():
    R = Rotation.random(500, random_state=1)
    q = retarget.matrix_to_quat(R.as_matrix())
    ref = R.as_quat(scalar_first=True)
    ref[ref[:, 0] < 0] *= -1
    assert np.abs(q - ref).max() < 1e-9


def test_align_rotation():
    R = Rotation.random(random_state=2).as_matrix()
    v = np.random.default_rng(0).normal(size=(3, 3))
    assert np.abs(retarget.align_rotation(v, v @ R.T) - R).max() < 1e-9
    a, b = np.array([[1.0, 0, 0]]), np.array([[-1.0, 0, 0]])
    assert np.abs(retarget.align_rotation(a, b) @ a[0] - b[0]).max() < 1e-9


def test_align_rotation_primary_direction_exact():
    """A chest whose collars sit forward of the neck (Rigify) against one with collars beside it: with
    the neck primary, the neck lines up exactly and the collars' line only sets the turn about it."""
    target = np.array([[0.0, 0.0, 0.19], [0.02, -0.07, 0.14], [-0.02, -0.07, 0.14]])   # neck, collars
    source = np.array([[0.0, 0.0, 0.15], [0.07, 0.0, 0.11], [-0.07, 0.0, 0.11]])
    turn = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    R = retarget.align_rotation(target, source @ turn.T, primary=0)
    up = (source @ turn.T)[0] / np.linalg.norm(source[0])
    assert np.abs(R @ target[0] / np.linalg.norm(target[0]) - up).max() < 1e-9
    x = R @ (target[1] - target[2])                 # the collar line turns with the source's
    assert np.degrees(np.arctan2(x[1], x[0])) == pytest.approx(30.0, abs=1e-6)
    ls = retarget.align_rotation(target, source)    # least squares tilts the neck instead
    assert np.degrees(np.arccos(ls[2] @ target[0] / np.linalg.norm(target[0]))) > 5.0


def test_presets_load_and_detect():
    ps = retarget.presets()
    assert set(ps) == set(retarget.PRESET_ORDER)
    joints = list(ps["engine"].bones)
    rigify = list(ps["rigify"].bones) + ["root", "MCH-torso.parent", "DEF-spine"]
    assert retarget.detect(rigify, joints).map.name == "rigify"
    assert retarget.detect(["mixamorig:" + b for b in ps["mixamo"].bones], joints).prefix == "mixamorig:"
    assert retarget.detect(list(ps["unreal"].bones) + ["root"], joints).map.name == "unreal"
    assert retarget.detect(list(ps["makehuman"].bones), joints).map.name == "makehuman"
    assert retarget.detect(joints, joints).map.name == "engine"
    legacy = retarget.detect(["f_avg_" + b for b in ps["smpl_legacy"].bones], joints)
    assert legacy.map.name == "smpl_legacy" and legacy.root == "f_avg_Pelvis"
    # a Mixamo rig without its left forearm: no preset fits, the message names the missing bone
    broken = ["mixamorig:" + b for b in ps["mixamo"].bones if b != "LeftForeArm"]
    with pytest.raises(retarget.RetargetError, match="mixamorig:LeftForeArm"):
        retarget.detect(broken, joints)
    with pytest.raises(retarget.RetargetError, match="No bone names match"):
        retarget.detect(["Bone", "Bone.001"], joints)


def test_custom_map_roundtrip_and_errors(tmp_path):
    m = retarget.BoneMap(name="mine", label="My rig", root="Body",
                         bones={"Body": "pelvis", "L_thigh": "left_hip", "L_shin": "left_knee", "L_foot": "left_ankle"})
    retarget.save_map(m, tmp_path / "mine.json")
    back = retarget.load_map(tmp_path / "mine.json")
    assert back == m and back.path.endswith("mine.json")
    r = retarget.resolve(back, ["Body", "L_thigh", "L_shin", "L_foot", "Other"], ["pelvis", "left_hip", "left_knee", "left_ankle"])
    assert r.bones["L_shin"] == "left_knee"
    for bad, msg in [({"format": "x"}, "not a Video Mocap bone map"),
                     ({**m.to_json(), "root": "Nope"}, "root bone"),
                     ({**m.to_json(), "bones": {"a": 1}}, "must map"),
                     ({**m.to_json(), "optional": ["zz"]}, "optional bones")]:
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(retarget.RetargetError, match=msg):
            retarget.load_map(tmp_path / "bad.json")
    with pytest.raises(retarget.RetargetError, match="joints the result does not have"):
        retarget.resolve(retarget.BoneMap(name="x", label="x", root="a", bones={"a": "tail"}), ["a"], ["pelvis"])
    with pytest.raises(retarget.RetargetError, match="must map the left leg"):
        retarget.resolve(retarget.BoneMap(name="x", label="x", root="a", bones={"a": "pelvis"}), ["a"],
                         ["pelvis", "left_hip", "left_knee", "left_ankle"])


def _angle(q: np.ndarray) -> np.ndarray:
    return 2.0 * np.degrees(np.arccos(np.clip(np.abs(q[..., 0]), 0.0, 1.0)))


def test_unmapped_share_of_parent_motion(result):
    """``unmapped: share``: a listed unmapped bone takes a share of its parent's pose rotation (or of its
    twist about the bone's own axis); mapped bones keep their world rotations; unlisted bones stay at rest."""
    r = result
    target = _mixamo_rig(r)
    m = retarget.presets()["mixamo"]
    for twist in (False, True):
        shared = retarget.parse_map({**m.to_json(), "unmapped": "share",
                                     "shares": {"LeftUpLegTwist": {"share": 0.5, "twist": twist}}})
        rest_out = retarget.retarget(r.joint_names, r.parents, r.rest_offsets, r.rotations, r.root_translation,
                                     target, retarget.resolve(m, target.names, r.joint_names))
        out = retarget.retarget(r.joint_names, r.parents, r.rest_offsets, r.rotations, r.root_translation,
                                target, retarget.resolve(shared, target.names, r.joint_names))
        assert "mixamorig:LeftUpLegTwist" in out.bones and "mixamorig:RightUpLegTwist" not in out.bones
        assert "mixamorig:LeftUpLegTwist" not in rest_out.bones
        tw = out.q_basis[:, out.bones.index("mixamorig:LeftUpLegTwist")]
        parent = out.q_basis[:, out.bones.index("mixamorig:LeftUpLeg")]
        b = target.names.index("mixamorig:LeftUpLegTwist")
        rel = target.rest_mats[target.parents[b]].T @ target.rest_mats[b]
        local = retarget.matrix_to_quat(rel.T[None] @ rig.quat_to_matrix(parent) @ rel[None])   # parent pose in the bone's axes
        if twist:
            assert np.abs(tw[:, [1, 3]]).max() < 1e-9                 # about the bone's Y axis only
            full = local * np.array([1.0, 0.0, 1.0, 0.0])
            full /= np.linalg.norm(full, axis=-1, keepdims=True)
        else:
            full = local
            axis_tw = tw[:, 1:] / np.linalg.norm(tw[:, 1:], axis=-1, keepdims=True)
            axis_full = full[:, 1:] / np.linalg.norm(full[:, 1:], axis=-1, keepdims=True)
            assert np.abs(np.abs(np.sum(axis_tw * axis_full, -1)) - 1.0).max() < 1e-6   # same axis
        assert np.abs(_angle(tw) - 0.5 * _angle(full)).max() < 1e-6
        assert _angle(tw).max() > 1.0                                  # it really moves
        # mapped bones keep their world rotation: the knee's basis absorbs the share
        for bone in ("mixamorig:LeftLeg", "mixamorig:RightLeg", "mixamorig:LeftArm"):
            k = target.names.index(bone)
            assert np.abs(_fk_rot(out, target)[:, k] - _fk_rot(rest_out, target)[:, k]).max() < 1e-9


def _fk_rot(out: retarget.Retargeted, target: retarget.TargetRig) -> np.ndarray:
    """Armature-space rotations of every bone from the keyed bases (Final = Final_p · rel · Basis)."""
    q = _full_basis(out, target)
    Q = rig.quat_to_matrix(q)
    B = target.rest_mats
    F = np.zeros(Q.shape)
    for b in retarget._topo_order(target.parents):
        p = target.parents[b]
        F[:, b] = (B[b] if p < 0 else F[:, p] @ B[p].T @ B[b]) @ Q[:, b]
    return F


def test_share_map_errors(tmp_path):
    base = {"format": "video_mocap.bone_map", "root": "a", "bones": {"a": "pelvis"}}
    for extra, msg in (({"unmapped": "copy"}, "not supported"),
                       ({"shares": {"t": {"share": 0.5}}}, "needs"),
                       ({"unmapped": "share", "shares": {"t": {"share": 1.5}}}, "share in 0..1"),
                       ({"unmapped": "share", "shares": {"a": {"share": 0.5}}}, "unmapped bones"),
                       ({"unmapped": "share", "shares": {"t": 0.5}}, "'shares' must map")):
        with pytest.raises(retarget.RetargetError, match=msg):
            retarget.parse_map({**base, **extra})
    m = retarget.parse_map({**base, "unmapped": "share", "shares": {"t": {"share": 0.25, "twist": True}}})
    assert m.shares == {"t": (0.25, True)}
    retarget.save_map(m, tmp_path / "m.json")
    assert retarget.load_map(tmp_path / "m.json").shares == {"t": (0.25, True)}
    assert retarget.presets()["unreal"].shares["upperarm_twist_01_l"] == (0.5, True)
