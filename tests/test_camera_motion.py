"""Camera rotation from the background (engine.camera_motion.CameraTracker) against known rotations."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from engine.camera_motion import CameraTracker

W, H = 640, 360
F = float(np.hypot(W, H))          # the engine's default focal


def _panorama(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A wide textured image seen by a camera with frame 0's orientation and the same focal length."""
    rng = np.random.default_rng(seed)
    big_w, big_h = 3 * W, 3 * H
    tex = cv2.resize(rng.random((big_h // 8, big_w // 8)).astype(np.float32), (big_w, big_h),
                     interpolation=cv2.INTER_CUBIC)
    tex = cv2.GaussianBlur(tex, (0, 0), 1.5)
    img = np.clip(tex * 255, 0, 255).astype(np.uint8)
    K_big = np.array([[F, 0, big_w / 2], [0, F, big_h / 2], [0, 0, 1]])
    return np.repeat(img[..., None], 3, -1), K_big


def _frames(rotations: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    big, K_big = _panorama(seed)
    K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])
    return [cv2.warpPerspective(big, K @ R @ np.linalg.inv(K_big), (W, H), flags=cv2.INTER_LINEAR)
            for R in rotations]


def _angle_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.degrees(Rotation.from_matrix(np.einsum("tba,tbc->tac", A, B)).magnitude())


def test_pan_and_tilt_recovered_within_a_degree():
    T = 60
    t = np.arange(T) / 30.0
    yaw = np.radians(12.0) * t / t[-1] * 2          # 24 degrees of pan in 2 s
    pitch = np.radians(3.0) * np.sin(2 * np.pi * 0.5 * t)
    true = Rotation.from_euler("yx", np.stack([yaw, pitch], 1)).as_matrix()   # X_t = R_t X_0
    tracker = CameraTracker()
    for img in _frames(true):
        tracker.update(img, None)
    est = tracker.rotations(F, W)
    err = _angle_deg(est, true)
    assert est.shape == (T, 3, 3)
    assert err.max() < 1.0, err.round(2)
    # the sign of the pan is right (not only its size)
    assert Rotation.from_matrix(est[-1]).as_euler("yxz")[0] > np.radians(20)


def test_static_camera_does_not_drift():
    T = 90
    frames = _frames(np.repeat(np.eye(3)[None], T, 0), seed=1)
    rng = np.random.default_rng(2)
    tracker = CameraTracker()
    for img in frames:                                  # sensor noise only
        noisy = np.clip(img.astype(np.int16) + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)
        tracker.update(noisy, None)
    err = _angle_deg(tracker.rotations(F, W), np.repeat(np.eye(3)[None], T, 0))
    assert err.max() < 0.3, err.max()


def test_the_person_is_masked_out():
    # a textured "person" patch that moves across a static background must not read as camera motion
    T = 40
    frames = _frames(np.repeat(np.eye(3)[None], T, 0), seed=3)
    rng = np.random.default_rng(4)
    patch = (rng.random((120, 60, 3)) * 255).astype(np.uint8)
    tracker = CameraTracker()
    for i, img in enumerate(frames):
        img = img.copy()
        x = 100 + 8 * i
        img[150:270, x:x + 60] = patch
        box = np.array([[x / W, 150 / H], [(x + 60) / W, 270 / H]])
        tracker.update(img, box)
    err = _angle_deg(tracker.rotations(F, W), np.repeat(np.eye(3)[None], T, 0))
    assert err.max() < 0.3, err.max()


def _look(c: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World (Z up) -> OpenCV camera (x right, y down, z forward) for a camera at c looking at target."""
    z = target - c
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ c


def test_dolly_over_a_floor_gives_metric_translation():
    from engine.camera_motion import camera_poses, tracking_intrinsics

    rng = np.random.default_rng(5)
    ppm = 100.0                                            # texture pixels per metre, floor 24 m x 24 m
    tex = cv2.resize(rng.random((300, 300)).astype(np.float32), (2400, 2400), interpolation=cv2.INTER_CUBIC)
    tex = np.repeat(np.clip(tex * 255, 0, 255).astype(np.uint8)[..., None], 3, -1)
    A = np.array([[1 / ppm, 0, -12.0], [0, 1 / ppm, -12.0], [0, 0, 1]])   # texture pixel -> floor (x, y)
    K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])
    T = 60
    xs = np.linspace(0.0, 1.5, T)                          # 1.5 m sideways in 2 s, looking ahead
    poses = [_look(np.array([x, -5.0, 1.6]), np.array([x, 0.0, 0.3])) for x in xs]
    tracker = CameraTracker()
    for R, t in poses:
        Hm = K @ np.c_[R[:, :2], t] @ A
        tracker.update(cv2.warpPerspective(tex, Hm, (W, H)), None)
    R0, t0 = poses[0]
    n0, p0 = R0 @ np.array([0.0, 0.0, 1.0]), t0              # floor normal and a floor point, camera 0
    Rs, ts, how = camera_poses(tracker, tracking_intrinsics(tracker, F, W), n0, p0)
    assert (how[1:] == 2).mean() > 0.9, how
    true_R = np.stack([R @ R0.T for R, _ in poses])
    true_t = np.stack([t - (R @ R0.T) @ t0 for R, t in poses])
    assert _angle_deg(Rs, true_R).max() < 1.0
    err = np.linalg.norm(ts - true_t, axis=1)
    assert err.max() < 0.05 * 1.5 + 0.02, err.max()        # within 5 % of the distance travelled
    # without the floor no translation is claimed (a sideways dolly over a plane then reads as a small pan:
    # the ambiguity the floor plane resolves)
    _, tr_, _ = camera_poses(tracker, tracking_intrinsics(tracker, F, W))
    assert np.allclose(tr_, 0)
