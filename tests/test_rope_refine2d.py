"""The optional 2D alignment after Rope (engine/rope/refine2d.py) against an independent projection.

The image landmarks are made with OpenCV's ``cv2.projectPoints`` from joint centres computed by the
numpy forward kinematics (``skeleton.forward_kinematics``), not by the refinement's own torch code.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from engine import skeleton as sk
from engine.pose import LM
from engine.rope.refine2d import Refine2DConfig, refine_2d

W, H, F, DEPTH = 640, 480, 600.0, 4.0
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1.0]])
# joints whose BlazePose landmark names the same anatomy (solve.TARGETS with a zero offset)
PAIRS = [f"{s}_{p}" for s in ("left", "right") for p in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")]


def _pose(T: int) -> np.ndarray:
    """A slowly waving pose: elbows bent, the left arm raised and swinging in the image plane."""
    R = np.repeat(np.eye(3)[None, None], T, 0).repeat(sk.J, 1)
    for t in range(T):
        R[t, sk.INDEX["left_shoulder"]] = Rotation.from_euler("y", -40 + 10 * np.sin(t / 4), degrees=True).as_matrix()
        R[t, sk.INDEX["left_elbow"]] = Rotation.from_euler("z", -50, degrees=True).as_matrix()
        R[t, sk.INDEX["right_elbow"]] = Rotation.from_euler("z", 30, degrees=True).as_matrix()
        R[t, sk.INDEX["left_knee"]] = Rotation.from_euler("x", 20, degrees=True).as_matrix()
    return R


def _joints(R: np.ndarray) -> np.ndarray:
    """Body-camera joints (x right, y away, z up), pelvis at the origin."""
    _, P = sk.forward_kinematics(R, np.zeros((len(R), 3)), sk.DEFAULT_REST_OFFSETS)
    return P


def _project(P_bc: np.ndarray) -> np.ndarray:
    """Body-camera points (T, J, 3) -> normalised image points (T, J, 2) of a camera DEPTH metres away."""
    cv = np.stack([P_bc[..., 0], -P_bc[..., 2], P_bc[..., 1]], -1)
    uv, _ = cv2.projectPoints(cv.reshape(-1, 3), np.zeros(3), np.array([0.0, 0.0, DEPTH]), K, None)
    return uv.reshape(*P_bc.shape[:2], 2) / np.array([W, H])


def _landmarks(P_bc: np.ndarray, hidden: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    T = len(P_bc)
    image = np.zeros((T, 33, 3), np.float32)
    vis = np.zeros((T, 33), np.float32)
    uv = _project(P_bc)
    for n in PAIRS:
        image[:, LM[n], :2] = uv[:, sk.INDEX[n]]
        vis[:, LM[n]] = 0.0 if n in hidden else 0.99
    return image, vis


def _pixel_error(R: np.ndarray, image: np.ndarray, joint: str) -> float:
    """Mean pixel distance of a joint's projection (placed like the truth) to its landmark."""
    uv = _project(_joints(R))[:, sk.INDEX[joint]] * np.array([W, H])
    return float(np.linalg.norm(uv - image[:, LM[joint], :2] * np.array([W, H]), axis=-1).mean())


def test_refinement_pulls_a_misplaced_arm_onto_the_landmarks():
    T = 24
    truth = _pose(T)
    image, vis = _landmarks(_joints(truth))
    est = truth.copy()   # Rope's estimate: the left upper arm 20 degrees off in the image plane
    est[:, sk.INDEX["left_shoulder"]] = Rotation.from_euler("y", 20, degrees=True).as_matrix() @ est[:, sk.INDEX["left_shoulder"]]
    out = refine_2d(est, np.zeros((T, 3)), sk.DEFAULT_REST_OFFSETS, image, vis, np.ones(T, bool), (W, H),
                    Refine2DConfig(iterations=60), focal_px=F)
    before, after = _pixel_error(est, image, "left_wrist"), _pixel_error(out, image, "left_wrist")
    assert before > 20.0
    assert after < 0.25 * before, (before, after)
    wrist = sk.INDEX["left_wrist"]
    err3d = lambda R: np.linalg.norm(_joints(R)[:, wrist] - _joints(truth)[:, wrist], axis=-1).mean()  # noqa: E731
    assert err3d(out) < 0.4 * err3d(est)
    # the joints that were right stay put
    for n in ("right_wrist", "left_ankle", "right_ankle"):
        j = sk.INDEX[n]
        assert np.linalg.norm(_joints(out)[:, j] - _joints(truth)[:, j], axis=-1).max() < 0.03, n


def test_hidden_parts_and_undetected_frames_keep_ropes_pose():
    T = 20
    truth = _pose(T)
    image, vis = _landmarks(_joints(truth), hidden=("left_elbow", "left_wrist"))
    est = truth.copy()
    # a wrong guess for the HIDDEN forearm: no evidence, so it must stay Rope's
    est[:, sk.INDEX["left_elbow"]] = Rotation.from_euler("z", -90, degrees=True).as_matrix()
    valid = np.ones(T, bool)
    valid[5:8] = False
    out = refine_2d(est, np.zeros((T, 3)), sk.DEFAULT_REST_OFFSETS, image, vis, valid, (W, H), focal_px=F)
    j = sk.INDEX["left_elbow"]
    ang = Rotation.from_matrix(np.einsum("tji,tjk->tik", est[:, j], out[:, j])).magnitude()
    assert np.degrees(ang).max() < 3.0
    np.testing.assert_array_equal(out[5:8], est[5:8].astype(np.float32))
    eye = np.einsum("...ji,...jk->...ik", out, out)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-4)


def test_nothing_detected_returns_the_input():
    T = 4
    R = _pose(T)
    out = refine_2d(R, np.zeros((T, 3)), sk.DEFAULT_REST_OFFSETS, np.zeros((T, 33, 3)), np.zeros((T, 33)),
                    np.zeros(T, bool), (W, H))
    np.testing.assert_array_equal(out, R.astype(np.float32))
