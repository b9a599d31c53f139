"""Foot locking (engine/footlock.py): planted feet stay within millimetres, the rest is left alone."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from engine import skeleton as sk
from engine.footlock import FootLockConfig, lock_feet, two_bone_ik

FPS = 30.0


def _standing(T: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rest-pose body standing on the floor; the root wobbles 1.5 cm per frame (estimate noise); from
    frame 40 the left knee bends 70 degrees and the hip 30 (the left foot lifts: a swing)."""
    rng = np.random.default_rng(seed)
    rest = sk.DEFAULT_REST_OFFSETS.copy()
    R = np.tile(np.eye(3), (T, sk.J, 1, 1))
    root = np.tile(rest[0], (T, 1)) + np.c_[rng.normal(0, 0.015, (T, 2)), np.zeros(T)]
    R[40:, sk.INDEX["left_hip"]] = Rotation.from_euler("x", -30, degrees=True).as_matrix()
    R[40:, sk.INDEX["left_knee"]] = Rotation.from_euler("x", 70, degrees=True).as_matrix()
    return R, root, rest


def test_two_bone_ik_reaches_a_reachable_target():
    rng = np.random.default_rng(1)
    hip = np.zeros((50, 3))
    knee = hip + np.array([0.0, 0.05, -0.42])
    ankle = knee + np.array([0.0, -0.08, -0.40])
    target = hip + 0.85 * (ankle - hip) + rng.normal(0, 0.03, (50, 3))   # within the leg's reach
    assert (np.linalg.norm(target - hip, axis=1) < 0.42 + 0.41 - 0.01).all()
    Q_hip, Q_knee = two_bone_ik(hip, knee, ankle, target)
    new_knee = hip + np.einsum("tab,tb->ta", Q_hip, knee - hip)
    new_ankle = new_knee + np.einsum("tab,tb->ta", Q_hip @ Q_knee, ankle - knee)
    assert np.linalg.norm(new_ankle - target, axis=1).max() < 1e-6
    assert np.allclose(np.linalg.norm(new_knee - hip, axis=1), np.linalg.norm(knee - hip, axis=1))


def test_planted_feet_stay_within_5_mm_and_the_swing_is_untouched():
    T = 60
    R, root, rest = _standing(T)
    _, before = sk.forward_kinematics(R, root, rest)
    R2, root2, stance = lock_feet(R, root, rest, FPS, FootLockConfig(pin_root=0.0))
    assert np.array_equal(root2, root)
    _, after = sk.forward_kinematics(R2, root, rest)
    la, ra = sk.INDEX["left_ankle"], sk.INDEX["right_ankle"]
    # the standing frames are stance for both feet, the lifted left foot is not
    assert stance[5:35, 0].all() and stance[5:55, 1].all() and not stance[45:, 0].any()
    lb, rb = sk.INDEX["left_foot"], sk.INDEX["right_foot"]
    for j, frames in ((la, slice(4, 36)), (ra, slice(4, 56)), (lb, slice(4, 36)), (rb, slice(4, 56))):
        slide = np.linalg.norm(np.diff(after[frames, j], axis=0), axis=1)
        assert slide.max() < 0.005, slide.max()                           # < 5 mm per frame
        raw = np.linalg.norm(np.diff(before[frames, j], axis=0), axis=1)
        assert raw.mean() > 0.01                                          # it did slide before
    assert np.allclose(after[45:, la], before[45:, la], atol=1e-9)       # the swing foot is left alone
    for j, p in enumerate(sk.PARENTS):                                   # bones keep their lengths
        if p >= 0:
            assert np.allclose(np.linalg.norm(after[:, j] - after[:, p], axis=1), np.linalg.norm(rest[j]))
    # the root and the upper body do not move
    assert np.allclose(after[:, sk.INDEX["head"]], before[:, sk.INDEX["head"]])


def test_strength_zero_is_off():
    R, root, rest = _standing(30)
    R2, _, _ = lock_feet(R, root, rest, FPS, FootLockConfig(strength=0.0))
    assert np.array_equal(R2, R)


def test_pinned_root_takes_the_planted_feet_slide_out_of_the_root():
    # standing still with 1.5 cm of root noise per frame: every horizontal motion is the feet sliding, so
    # pinning must take (nearly) all of it out; a walker's own progress is kept (not tested here)
    from engine.footlock import pinned_root

    T = 40
    R, root, rest = _standing(T)
    R[:, sk.INDEX["left_hip"]] = R[:, sk.INDEX["left_knee"]] = np.eye(3)   # both feet down throughout
    _, P = sk.forward_kinematics(R, root, rest)
    pinned = pinned_root(P, root, np.ones((T, 2)), 1.0)
    step_before = np.linalg.norm(np.diff(root[:, :2], axis=0), axis=1)
    step_after = np.linalg.norm(np.diff(pinned[:, :2], axis=0), axis=1)
    assert step_before.mean() > 0.01 and step_after.max() < 1e-9, (step_before.mean(), step_after.max())
    assert np.array_equal(pinned[:, 2], root[:, 2])                      # height untouched
    half = pinned_root(P, root, np.ones((T, 2)), 0.5)
    assert np.allclose(np.diff(half[:, :2], axis=0), 0.5 * np.diff(root[:, :2], axis=0))


def test_predicted_contacts_decide_the_stance():
    """Contacts from the trajectory stage (TP) replace the foot-speed test: a foot marked in contact is
    held within 5 mm even while the estimate swings it, and one marked free is left alone."""
    T = 60
    R, root, rest = _standing(T)
    predicted = np.zeros((T, 4), bool)
    predicted[:, 2:] = True                       # right foot planted throughout
    predicted[:20, :2] = True                     # left foot planted for the first 20 frames only
    _, before = sk.forward_kinematics(R, root, rest)
    R2, _, stance = lock_feet(R, root, rest, FPS, FootLockConfig(pin_root=0.0), predicted=predicted)
    _, after = sk.forward_kinematics(R2, root, rest)
    assert stance[:20, 0].all() and not stance[20:, 0].any() and stance[:, 1].all()
    ra, la = sk.INDEX["right_ankle"], sk.INDEX["left_ankle"]
    assert np.linalg.norm(np.diff(after[4:56, ra], axis=0), axis=1).max() < 0.005
    assert np.allclose(after[25:, la], before[25:, la], atol=1e-9)   # free (by the prediction) = untouched


def test_a_planted_foot_holds_its_orientation_so_the_ball_stays_put():
    """The estimate wobbles the feet by ~6 degrees a frame; locked, the ball of a planted foot moves
    less than 5 mm a frame (it slid more than that with the ankle held alone)."""
    T = 60
    R, root, rest = _standing(T)
    rng = np.random.default_rng(4)
    for side in ("left", "right"):
        R[:, sk.INDEX[f"{side}_ankle"]] = Rotation.from_rotvec(rng.normal(0, 0.06, (T, 3))).as_matrix()
    rb = sk.INDEX["right_foot"]
    slides = {}
    for hold in (False, True):
        R2, _, _ = lock_feet(R, root, rest, FPS, FootLockConfig(pin_root=0.0, hold_orientation=hold))
        _, after = sk.forward_kinematics(R2, root, rest)
        slides[hold] = np.linalg.norm(np.diff(after[4:56, rb], axis=0), axis=1).max()
    assert slides[True] < 0.005 < slides[False], slides


def test_the_stage_moves_a_moving_camera_with_the_root():
    """When foot locking shifts the root (its planted feet's slide taken out), a moving camera moves with
    it, so the root's position in each camera frame is unchanged; a static camera stays put."""
    import dataclasses

    from engine.stages.records import BodyMotion, Clip, Trajectory
    from engine.stages.refine_footlock import FootLockRefine

    T = 60
    R, root, rest = _standing(T)
    _, P = sk.forward_kinematics(R, np.zeros((T, 3)), rest)
    motion = BodyMotion(rotations=R.astype(np.float32), root=np.zeros((T, 3), np.float32), rest_offsets=rest,
                        joints=P.astype(np.float32), height=1.7, joint_confidence=np.ones((T, sk.J)),
                        anchors=np.zeros((T, 1, 3)), anchor_landmarks=[[0]], anchor_weights=np.ones((T, 1)),
                        foot_anchors=[0])
    E = np.tile(np.eye(4), (T, 1, 1))
    E[:, :3, :3] = Rotation.from_euler("z", np.linspace(0, 30, T)[:, None], degrees=True).as_matrix()
    E[:, :3, 3] = [0.0, 1.0, 4.0]
    traj = Trajectory(root_world=root, root_orient_world=R[:, 0], camera_extrinsics=E, camera_static=False)
    clip = Clip(fps=FPS, width=640, height=480, focal_px=800.0)
    stage = FootLockRefine(FootLockConfig())
    cam_root = lambda t: np.einsum("tab,tb->ta", t.camera_extrinsics[:, :3, :3], t.root_world) + t.camera_extrinsics[:, :3, 3]  # noqa: E731
    _, moved = stage(motion, traj, clip, lambda i, n: None)
    assert np.abs(moved.root_world - root).max() > 0.01                     # the root did move
    np.testing.assert_allclose(cam_root(moved), cam_root(traj), atol=1e-9)
    _, kept = stage(motion, dataclasses.replace(traj, camera_static=True), clip, lambda i, n: None)
    assert np.array_equal(kept.camera_extrinsics, E)
    # a static camera: the root stays on the ray it was seen on (same direction from the camera centre)
    C = -np.einsum("tba,tb->ta", E[:, :3, :3], E[:, :3, 3])
    before, after = root - C, kept.root_world - C
    cos = np.einsum("ta,ta->t", before, after) / np.linalg.norm(before, axis=1) / np.linalg.norm(after, axis=1)
    assert np.allclose(cos, 1.0, atol=1e-9) and np.abs(kept.root_world - root).max() > 1e-3
