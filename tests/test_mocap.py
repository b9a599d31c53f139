import os
from pathlib import Path

import numpy as np
import pytest

from engine import skeleton as sk
from engine.environment import use_bundled_anny_cache
from scripts.vmkit.mocap.asf_amc import asf_amc_to_clip, parse_amc, parse_asf
from scripts.vmkit.mocap.bvh import parse_bvh
from scripts.vmkit.mocap.dataset import DEFAULT_ROOT, VAL_SUBJECTS, list_clips, load_motion
from scripts.vmkit.mocap.retarget import matrix_to_quat_wxyz, quat_wxyz_to_matrix
from scripts.vmkit.mocap.synth_landmarks import LANDMARK_NAMES, landmarks_from_joints, synthesize

TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Arm
  {
    OFFSET 2 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 3 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.04
1 2 3 0 0 0 0 0 0
0 0 0 90 0 0 0 0 0
0 0 0 0 0 0 90 90 0
"""


def test_bvh_positions_by_hand():
    c = parse_bvh(TINY_BVH)
    assert c.names == ["Hips", "Arm", "Arm_end"]
    assert c.fps == pytest.approx(25.0)
    _, P = c.forward_kinematics()
    # frame 0: translated rest pose
    np.testing.assert_allclose(P[0], [[1, 2, 3], [3, 2, 3], [3, 5, 3]], atol=1e-9)
    # frame 1: root turned 90 deg about Z: x -> y, y -> -x
    np.testing.assert_allclose(P[1], [[0, 0, 0], [0, 2, 0], [-3, 2, 0]], atol=1e-9)
    # frame 2: Arm = Rz(90) @ Rx(90) (channel order Z, X, Y): end offset (0,3,0) -Rx-> (0,0,3) -Rz-> (0,0,3)
    np.testing.assert_allclose(P[2], [[0, 0, 0], [2, 0, 0], [2, 0, 3]], atol=1e-9)


TINY_ASF = """:version 1.10
:units
  mass 1.0
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 1 0 0
     length 2
     axis 90 0 0 XYZ
    dof rz
  end
  begin
     id 2
     name b
     direction 0 1 0
     length 1
     axis 0 0 0 XYZ
  end
:hierarchy
  begin
    root a
    a b
  end
"""
TINY_AMC = """:FULLY-SPECIFIED
:DEGREES
1
root 1 0 0 0 0 0
a 0
2
root 0 0 0 0 0 0
a 90
"""


def test_asf_amc_positions_by_hand():
    clip = asf_amc_to_clip(parse_asf(TINY_ASF), parse_amc(TINY_AMC), fps=30.0)
    assert clip.names == ["root", "a", "b", "b_end"]
    _, P = clip.forward_kinematics()
    np.testing.assert_allclose(P[0], [[1, 0, 0], [1, 0, 0], [3, 0, 0], [3, 1, 0]], atol=1e-9)
    # a's frame is the world rotated 90 deg about X, so its rz turns about world -Y:
    # L = Rx(90) Rz(90) Rx(90)^T maps x -> +z and leaves y alone.
    np.testing.assert_allclose(P[1], [[0, 0, 0], [0, 0, 0], [0, 0, 2], [0, 1, 2]], atol=1e-9)


def test_quaternion_conventions_are_wxyz_and_continuous():
    R = np.stack([np.eye(3), np.diag([1.0, -1.0, -1.0])])[:, None]  # identity, then 180 deg about X
    q = matrix_to_quat_wxyz(R)
    np.testing.assert_allclose(q[0, 0], [1, 0, 0, 0], atol=1e-12)
    assert abs(q[1, 0, 1]) == pytest.approx(1.0)
    np.testing.assert_allclose(quat_wxyz_to_matrix(q), R, atol=1e-12)
    qs = matrix_to_quat_wxyz(quat_wxyz_to_matrix(np.array([[[0.1, 0.995, 0, 0]], [[-0.1, 0.995, 0, 0]]]) /
                                                  np.linalg.norm([0.1, 0.995])))
    assert np.sum(qs[0, 0] * qs[1, 0]) >= 0


def test_landmarks_follow_joints_and_sides():
    rest = sk.rest_positions(sk.DEFAULT_REST_OFFSETS)[None]          # (1, 24, 3) T-pose facing -Y
    rot = np.broadcast_to(np.eye(3), (1, sk.J, 3, 3))
    L = landmarks_from_joints(rest, rot)
    idx = {n: i for i, n in enumerate(LANDMARK_NAMES)}
    assert len(LANDMARK_NAMES) == 33 and LANDMARK_NAMES[11] == "left_shoulder" and LANDMARK_NAMES[32] == "right_foot_index"
    np.testing.assert_allclose(L[0, idx["left_shoulder"]], rest[0, sk.INDEX["left_shoulder"]])
    assert L[0, idx["left_eye"], 0] > 0 > L[0, idx["right_eye"], 0]             # left is +X
    assert L[0, idx["nose"], 1] < rest[0, sk.INDEX["head"], 1]                  # nose in front (-Y)
    assert L[0, idx["left_heel"], 1] > L[0, idx["left_foot_index"], 1]          # heel behind the toes
    T = 40
    joints = np.repeat(rest, T, 0)
    o = synthesize(joints, np.broadcast_to(np.eye(3), (T, sk.J, 3, 3)), np.random.default_rng(0), miss_prob=0.0)
    assert o["image"].shape == (T, 33, 3) and o["world"].shape == (T, 33, 3) and o["visibility"].shape == (T, 33)
    assert np.all((o["visibility"] >= 0) & (o["visibility"] <= 1))
    hip_mid = 0.5 * (o["world"][:, 23] + o["world"][:, 24])
    assert np.abs(hip_mid).mean() < 0.08                                         # hip-centred (noisy)
    inside = (o["image"][..., :2] > 0) & (o["image"][..., :2] < 1)
    assert inside.mean() > 0.8                                                   # the camera sees the body


HAS_DATA = (Path(DEFAULT_ROOT) / "cmu-mb").is_dir()
needs_data = pytest.mark.skipif(not HAS_DATA, reason=f"SHARED DATA MISSING: {DEFAULT_ROOT} (../shared/data/mocap "
                                "or $VIDMOCAP_MOCAP_DIR): the mocap readers are NOT tested on real files")


@needs_data
def test_split_is_by_subject():
    clips = list_clips()
    train = {c.subject for c in clips if c.split == "train"}
    val = {c.subject for c in clips if c.split == "val"}
    assert val == set(VAL_SUBJECTS) and not (train & val)


@needs_data
@pytest.mark.parametrize("name", ["cmu-mb/07/07_01", "hdm05/train/5/HDM_bd_jogLeftCircle4StepsRstart_001_120",
                                  "cmu-daz/12/12_01", "secondlife/avatar_walk"])
def test_retarget_real_clip(name):
    from scripts.vmkit.mocap.asf_amc import load_asf_amc
    from scripts.vmkit.mocap.bvh import load_bvh
    from scripts.vmkit.mocap.retarget import detect_source_map, retarget

    entry = {c.name: c for c in list_clips()}.get(name)
    if entry is None:
        pytest.skip(f"{name} not in this data copy")
    clip = load_asf_amc(entry.asf_path, entry.path) if entry.asf_path else load_bvh(entry.path)
    motion, targets = retarget(clip, detect_source_map(clip), fps=None, return_targets=True)
    err = np.linalg.norm(motion.joints_world - targets, axis=-1)
    assert err.mean() < 0.005 and err.max() < 0.05            # metres
    # joints_world is the FK of the stored rotations
    _, fk = sk.forward_kinematics(motion.rotation_matrices(), motion.root_translation, motion.rest_offsets)
    np.testing.assert_allclose(fk, motion.joints_world, atol=1e-6)
    feet = motion.joints_world[:, [sk.INDEX[n] for n in sk.CONTACT_JOINTS], 2]
    assert abs(np.percentile(feet.min(1), 2) - 0.03) < 0.03    # ground: lowest foot point ~ sole height
    # rest pose: a T-pose facing -Y with the left side at +X
    rest = sk.rest_positions(motion.rest_offsets)
    assert rest[sk.INDEX["left_wrist"], 0] > 0.4 > -0.4 > rest[sk.INDEX["right_wrist"], 0]
    assert rest[sk.INDEX["left_foot"], 1] < rest[sk.INDEX["left_ankle"], 1]
    assert 1.2 < rest[sk.INDEX["head"], 2] < 1.8
    # knees bend forward: signed flexion about the pelvis' left axis is >= -10 deg in most frames
    Rw = motion.world_rotations()
    for side in ("left", "right"):
        hip, knee, ankle = (motion.joints_world[:, sk.INDEX[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
        thigh, shin = knee - hip, ankle - knee
        left_axis = Rw[:, 0, :, 0]
        ang = np.degrees(np.arctan2(np.einsum("ti,ti->t", np.cross(thigh, shin), left_axis),
                                    np.einsum("ti,ti->t", thigh, shin)))
        assert np.mean(ang > -10) > 0.95, (side, np.percentile(ang, [1, 50]))


@needs_data
def test_walk_faces_where_it_goes_and_has_contacts():
    m = load_motion({c.name: c for c in list_clips()}["cmu-mb/07/07_01"])
    assert m.fps == 30.0
    travel = m.root_translation[-1] - m.root_translation[0]
    Rw = m.world_rotations()
    facing = Rw[:, 0] @ np.array([0.0, -1.0, 0.0])              # rest faces -Y
    assert np.dot(facing.mean(0), travel / np.linalg.norm(travel)) > 0.8
    frac = m.foot_contacts.mean(0)
    assert np.all((frac > 0.15) & (frac < 0.85))
    # contacts happen near the floor
    z = m.joints_world[:, [sk.INDEX[n] for n in sk.CONTACT_JOINTS], 2]
    assert np.all(z[m.foot_contacts] < 0.2)
    q = m.rotations
    assert np.all(np.sum(q[1:] * q[:-1], -1) >= 0)               # hemisphere continuity
    half = m.resample(15.0)
    assert half.num_frames == (m.num_frames + 1) // 2
    np.testing.assert_allclose(half.joints_world, m.joints_world[::2], atol=1e-6)


use_bundled_anny_cache()  # the venv's prebuilt cache (engine/setup_env.py), as the engine does
ANNY_CACHE = Path(os.environ.get("ANNY_CACHE_DIR", Path.home() / ".cache" / "anny"))


@needs_data
@pytest.mark.skipif(not any(ANNY_CACHE.glob("**/build_compact_model_data_*.safetensors")),
                    reason="anny model not built (first build takes ~75 s)")
def test_anny_follows_motion():
    from scripts.vmkit import metrics
    from scripts.vmkit.mocap.anny_pose import get_anny_model, phenotype_for_motion, pose_anny

    model = get_anny_model()
    missing = set(sk.ANNY_CMU_MB_BONE.values()) - set(model.bone_labels)
    assert not missing, missing
    m = load_motion({c.name: c for c in list_clips()}["cmu-mb/07/07_01"])
    fr = pose_anny(m, phenotype_for_motion(m), frames=slice(0, 40, 4))
    assert fr.vertices.shape[0] == 10 and fr.joints_world.shape == (10, 24, 3)
    assert fr.faces.max() < fr.vertices.shape[1]
    assert abs(np.percentile(fr.vertices[..., 2].min(1), 10)) < 0.04        # soles on the floor
    # the body follows the motion: pose differences are proportions only (a mirrored or mis-corrected
    # limb would give > 150 mm)
    assert metrics.pa_mpjpe(fr.joints_world, m.joints_world[0:40:4]) < 70
    left_axis = m.world_rotations()[0:40:4, 0, :, 0]
    across = fr.joints_world[:, sk.INDEX["left_shoulder"]] - fr.joints_world[:, sk.INDEX["right_shoulder"]]
    assert np.all(np.einsum("ti,ti->t", across, left_axis) > 0.2)             # anny's left is the motion's left
