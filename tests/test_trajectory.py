"""engine/trajectory.py and engine/camera_motion.py against independent references: a pinhole projection
written here, a ground plane and a camera placed by hand, a gait with known stance phases, and images
shifted by a known amount."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engine import contacts, trajectory
from engine.camera_motion import CameraMotionMeter

FPS = 30.0


# -- camera_translation: perspective placement -----------------------------------------------------
def _project(P: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points (..., 3) to pixels (..., 2): u = f x / z + cx."""
    return np.stack([K[0, 0] * P[..., 0] / P[..., 2] + K[0, 2], K[1, 1] * P[..., 1] / P[..., 2] + K[1, 2]], -1)


def _body_cloud(rng, T: int, N: int = 20) -> np.ndarray:
    """(T, N, 3) points of a body-sized cloud (OpenCV axes: x right, y down, z forward), hip-centred."""
    base = rng.uniform([-0.25, -0.9, -0.15], [0.25, 0.9, 0.15], (N, 3))
    wobble = 0.05 * np.sin(np.linspace(0, 3, T))[:, None, None] * rng.normal(size=(1, N, 3))
    return base[None] + wobble


def test_camera_translation_recovers_known_placement():
    rng = np.random.default_rng(0)
    T = 40
    # a 1280x720 frame whose principal point differs in x and y, so swapped axes cannot pass
    K = trajectory.intrinsics(900.0, 1280, 720)
    pts = _body_cloud(rng, T)
    t_true = np.stack([np.linspace(-1.2, 1.5, T), np.linspace(0.3, -0.4, T), np.linspace(3.0, 6.5, T)], -1)
    uv = _project(pts + t_true[:, None], K)
    w = rng.uniform(0.3, 1.0, pts.shape[:2])
    t = trajectory.camera_translation(pts, uv, w, K)
    assert np.abs(t - t_true).max() < 1e-3, np.abs(t - t_true).max()


def test_camera_translation_ignores_unweighted_points_and_reports_unsolvable_frames():
    rng = np.random.default_rng(1)
    T = 10
    K = trajectory.intrinsics(700.0, 640, 480)
    pts = _body_cloud(rng, T)
    t_true = np.tile([0.2, 0.1, 4.0], (T, 1))
    uv = _project(pts + t_true[:, None], K)
    w = np.ones(pts.shape[:2])
    uv[:, :4] += rng.uniform(80, 150, (T, 4, 2))        # four points far off in the image ...
    w[:, :4] = 0.0                                      # ... that the detector flagged invisible
    w[3, 4:] = 0.0                                      # frame 3: nothing visible
    w[5, 6:] = 0.0                                      # frame 5: only two points (3 are needed)
    uv[7, 4:] = np.nan                                  # frame 7: landmarks missing
    t = trajectory.camera_translation(pts, uv, w, K)
    bad = [3, 5, 7]
    assert np.isnan(t[bad]).all()
    good = np.setdiff1d(np.arange(T), bad)
    assert np.abs(t[good] - t_true[good]).max() < 1e-3


def test_camera_translation_with_pixel_noise_stays_close():
    rng = np.random.default_rng(2)
    T = 30
    K = trajectory.intrinsics(800.0, 1280, 720)
    pts = _body_cloud(rng, T, 30)
    t_true = np.tile([0.5, 0.2, 5.0], (T, 1))
    uv = _project(pts + t_true[:, None], K) + rng.normal(0, 1.0, (T, 30, 2))  # 1 px noise
    t = trajectory.camera_translation(pts, uv, np.ones((T, 30)), K)
    err = np.abs(t - t_true)
    assert err[:, :2].max() < 0.02 and err[:, 2].max() < 0.15, err.max(0)   # depth is the noisy axis
    assert abs(np.median(t[:, 2]) - 5.0) < 0.05


def test_focal_helpers():
    assert trajectory.default_focal(640, 480) == pytest.approx(800.0)
    # 90 degrees horizontal: f = w / 2
    assert trajectory.focal_from_fov(90.0, 1280, 720) == pytest.approx(640.0)
    K = trajectory.intrinsics(500.0, 640, 360)
    np.testing.assert_allclose(K, [[500, 0, 320], [0, 500, 180], [0, 0, 1]])


# -- depth outliers, gaps, smoothing -----------------------------------------------------------------
def test_depth_spike_rejected_and_normal_frames_kept():
    rng = np.random.default_rng(3)
    T = 90
    t = np.stack([np.linspace(-1, 1, T), np.full(T, 0.2), 4.0 + 0.3 * np.sin(np.linspace(0, 2, T))], -1)
    t[:, 2] += rng.normal(0, 0.01, T)
    spikes = {30: 0.55, 31: 1.6, 60: 1.3}                    # x depth: the body placed far too near/far
    for k, f in spikes.items():
        t[k, 2] *= f
    t[45, 2] *= 1.08                                         # an 8 % step is within tolerance: kept
    support = np.full(T, 10.0)
    support[70] = 1.0                                        # too few visible points
    out = trajectory.reject_depth_outliers(t, support, FPS)
    rejected = set(np.flatnonzero(np.isnan(out).any(1)))
    assert rejected == {30, 31, 60, 70}, sorted(rejected)
    keep = np.setdiff1d(np.arange(T), list(rejected))
    np.testing.assert_array_equal(out[keep], t[keep])


def test_fill_gaps_interpolates_and_holds_ends():
    x = np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan])[:, None] * np.array([1.0, -2.0])
    y = trajectory.fill_gaps(x)
    np.testing.assert_allclose(y[:, 0], [1, 1, 2, 3, 4, 4])
    np.testing.assert_allclose(y[:, 1], [-2, -2, -4, -6, -8, -8])


def test_smooth_keeps_quadratics_and_removes_noise():
    rng = np.random.default_rng(4)
    tt = np.arange(90) / FPS
    clean = 0.5 * tt ** 2 - tt + 3.0
    np.testing.assert_allclose(trajectory.smooth(clean[:, None], FPS, 1.0)[:, 0], clean, atol=1e-9)
    noisy = clean + rng.normal(0, 0.05, len(tt))
    sm = trajectory.smooth(noisy[:, None], FPS, 1.0)[:, 0]
    assert np.std(sm - clean) < 0.35 * np.std(noisy - clean)


# -- world frame from a known ground plane ----------------------------------------------------------
def _camera(height: float, pitch_deg: float, yaw_deg: float = 0.0):
    """World (Z up) -> OpenCV camera rotation/position for a camera at ``height`` looking along +Y,
    pitched down by ``pitch_deg``."""
    base = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])             # world -> camera rows, level
    tilt = Rotation.from_euler("x", -pitch_deg, degrees=True).as_matrix()  # looking down
    yaw = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    R = base @ tilt.T @ yaw.T
    return R, np.array([0.0, 0.0, height])


def _walk_scene(T: int, R: np.ndarray, C: np.ndarray, rng, circle: bool):
    """Feet (T, 4, 3) and pelvis/torso-up in camera coordinates for a walker on the plane z = 0."""
    s = np.linspace(0, 2 * np.pi, T)
    centre = np.array([0.0, 5.0])
    path = centre + (np.stack([1.3 * np.cos(s), 1.0 * np.sin(s)], -1) if circle
                     else np.stack([np.linspace(-1.5, 1.5, T), np.zeros(T)], -1))
    pelvis = np.concatenate([path, np.full((T, 1), 0.95)], -1)
    phase = np.sin(2 * np.pi * np.arange(T) / 30.0)
    feet = np.zeros((T, 4, 3))
    for k, (dx, lift) in enumerate([(0.1, np.clip(phase, 0, None)), (-0.1, np.clip(-phase, 0, None))]):
        for j, h in enumerate((0.08, 0.03)):                 # ankle 8 cm, ball 3 cm above the sole
            feet[:, 2 * k + j, :2] = path + [dx, 0.0]
            feet[:, 2 * k + j, 2] = h + 0.12 * lift
    up = np.tile([0.0, 0.0, 1.0], (T, 1)) + rng.normal(0, 0.03, (T, 3))
    to_cam = lambda p: (p - C) @ R.T  # noqa: E731
    return to_cam(feet), up @ R.T, to_cam(pelvis), feet, pelvis


@pytest.mark.parametrize("circle", [True, False], ids=["walks-around", "walks-across"])
def test_estimate_world_on_known_ground(circle):
    rng = np.random.default_rng(5)
    T = 120
    R, C = _camera(1.4, 12.0, yaw_deg=8.0)
    foot_cam, up_cam, pelvis_cam, feet_w, pelvis_w = _walk_scene(T, R, C, rng, circle)
    valid = np.ones(T, bool)
    wf, info = trajectory.estimate_world(foot_cam, up_cam, pelvis_cam, valid)
    assert info["up_source"] == ("ground_ransac" if circle else "torso")
    np.testing.assert_allclose(wf.B.T @ wf.B, np.eye(3), atol=1e-9)       # orthonormal
    assert np.linalg.det(wf.B) > 0                                          # right-handed
    up_true = R @ np.array([0.0, 0.0, 1.0])
    assert np.degrees(np.arccos(np.clip(wf.B[:, 2] @ up_true, -1, 1))) < 2.0
    assert info["camera_pitch_deg"] == pytest.approx(12.0, abs=2.0)
    # the ground is where the lowest foot point (the ball, 3 cm) rests
    assert info["camera_height"] == pytest.approx(1.4 - 0.03, abs=0.03)
    feet = wf.to_world(foot_cam)
    heights_true = feet_w[..., 2] - 0.03
    assert np.abs(feet[..., 2] - heights_true).max() < 0.06
    P = wf.to_world(pelvis_cam)
    assert np.abs(P[0, :2]).max() < 1e-6                                    # origin below the first pelvis
    assert P[0, 2] == pytest.approx(0.95 - 0.03, abs=0.03)
    # horizontal distances are preserved (a rigid change of frame)
    d_true = np.linalg.norm(np.diff(pelvis_w[:, :2], axis=0), axis=-1).sum()
    d = np.linalg.norm(np.diff(P[:, :2], axis=0), axis=-1).sum()
    assert d == pytest.approx(d_true, rel=0.02)
    # the world +Y looks away from the camera, X to its right
    assert wf.B[2, 1] > 0.9 and wf.B[0, 0] > 0.9
    E = wf.extrinsic()
    np.testing.assert_allclose(E[:3, :3] @ P[5] + E[:3, 3], pelvis_cam[5], atol=1e-9)


# -- foot contacts --------------------------------------------------------------------------------
def _gait(T: int, cycle: int = 30, stance: int = 18, stride: float = 1.2, rest_h: float = 0.08,
          offset: int = 0):
    """One foot point (T, 3) walking along +Y: still on the ground during stance, a smooth swing arc
    (up 12 cm, forward ``stride``) otherwise. Returns the points and the true stance mask."""
    pos = np.zeros((T, 3))
    truth = np.zeros(T, bool)
    y = 0.0
    swing = cycle - stance
    for t in range(T):
        k = (t + offset) % cycle
        if k < stance:
            truth[t] = True
            pos[t] = (0.1, y, rest_h)
        else:
            s = (k - stance + 1) / (swing + 1)
            pos[t] = (0.1, y + stride * (1 - np.cos(np.pi * s)) / 2, rest_h + 0.12 * np.sin(np.pi * s) ** 2)
            if k == cycle - 1:
                y += stride
    return pos, truth


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.r_[0, mask.astype(int), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def test_foot_contacts_follow_stance_phases():
    rng = np.random.default_rng(6)
    T = 150
    left, tl = _gait(T)
    right, tr = _gait(T, offset=15)
    pts = np.stack([left, right], 1) + rng.normal(0, 0.002, (T, 2, 3))  # 2 mm of noise
    c = contacts.label(pts, FPS, np.array([0.08, 0.08]))
    for k, truth in enumerate((tl, tr)):
        assert (c[:, k] == truth).mean() > 0.9
        pred_runs, true_runs = _runs(c[:, k]), _runs(truth)
        assert len(pred_runs) == len(true_runs), (pred_runs, true_runs)
        errors = []
        for (a, b), (ta, tb) in zip(pred_runs, true_runs):
            # stance begins and ends within 2 frames of the truth (clip ends excepted) ...
            assert ta == 0 or abs(a - ta) <= 2, (a, ta)
            assert tb == T or abs(b - tb) <= 2, (b, tb)
            errors += ([abs(a - ta)] if ta else []) + ([abs(b - tb)] if tb < T else [])
        # ... and within a frame on average (measured 0.6: the central-difference speed sees the first
        # swing step one frame early)
        assert np.mean(errors) <= 1.0, (pred_runs, true_runs)


def test_foot_contacts_need_both_low_and_slow():
    T = 30
    rest = np.array([0.08, 0.08, 0.08, 0.08])
    pts = np.zeros((T, 4, 3))
    pts[:, 0, 2] = 0.08                                    # planted: contact
    pts[:, 1, 2] = 0.08 + 0.15                             # held still 15 cm up (a raised foot): none
    pts[:, 2, 2] = 0.08                                    # on the ground but sliding at 1.5 m/s: none
    pts[:, 2, 1] = np.arange(T) * 1.5 / FPS
    pts[:, 3, 2] = 0.08 + 0.03                             # resting 3 cm higher (soft ground, noise)
    pts[:, 3, 1] = np.arange(T) * 0.15 / FPS               # creeping at 0.15 m/s: still a contact
    c = contacts.label(pts, FPS, rest)
    assert c[:, 0].all() and c[:, 3].all()
    assert not c[:, 1].any() and not c[:, 2].any()


# -- camera motion ------------------------------------------------------------------------------------
def _texture(rng, h: int, w: int) -> np.ndarray:
    import cv2

    noise = rng.uniform(0, 255, (h // 8, w // 8)).astype(np.float32)
    img = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, -1)


@pytest.mark.parametrize("shift_px, moving", [(0, False), (1, False), (8, True)])
def test_camera_motion_meter(shift_px, moving):
    """A textured wall seen by a still camera (plus sensor noise) and by a camera panning 8 px a frame
    (1.25 % of a 640 px width)."""
    rng = np.random.default_rng(7)
    big = _texture(rng, 360, 640 + 30 * shift_px + 8)
    meter = CameraMotionMeter()
    for k in range(30):
        frame = big[:, k * shift_px:k * shift_px + 640].astype(np.int16)
        frame = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
        person = np.array([[0.4, 0.2], [0.6, 0.9]])        # normalised box corners, masked out
        meter.update(frame, person)
    assert meter.is_moving() is moving


@pytest.mark.parametrize("shift_px, moving", [(0, False), (1, False), (8, True)])
def test_camera_motion_meter_on_the_trackers_grey_frames(shift_px, moving):
    """The engine feeds the meter the camera tracker's small grey frame instead of the RGB frame: the same
    verdicts, and per-frame motion within a tenth of a pixel (of the meter's 192-px frame) of the RGB path."""
    from engine.camera_motion import CameraTracker

    rng = np.random.default_rng(7)
    big = _texture(rng, 360, 640 + 30 * shift_px + 8)
    from_rgb, from_grey, tracker = CameraMotionMeter(), CameraMotionMeter(), CameraTracker()
    for k in range(30):
        frame = big[:, k * shift_px:k * shift_px + 640].astype(np.int16)
        frame = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
        person = np.array([[0.4, 0.2], [0.6, 0.9]])
        grey = tracker.update(frame, person)
        assert grey.ndim == 2 and grey.shape[1] == tracker.width
        from_rgb.update(frame, person)
        from_grey.update(None, person, grey=grey)
    assert from_grey.is_moving() is moving is from_rgb.is_moving()
    a, b = np.asarray(from_rgb.motion[1:]), np.asarray(from_grey.motion[1:])
    assert np.allclose(a, b, atol=0.1 / 192), np.abs(a - b).max() * 192


def test_camera_motion_meter_undecided_on_few_frames():
    meter = CameraMotionMeter()
    rng = np.random.default_rng(8)
    img = _texture(rng, 120, 160)
    for _ in range(3):
        meter.update(img, None)
    assert meter.is_moving() is None
