"""The floor (engine/trajectory.py estimate_world): RANSAC over still feet, the lowest consistent plane
(not the top of a box the person stood on), a camera-height check, and no body below the floor."""

from __future__ import annotations

import numpy as np

from engine import trajectory as tr


def scene(box_share: float, T: int = 300, cam_h: float = 1.5, pitch_deg: float = 10.0, seed: int = 0):
    """A person walking on a floor in front of a camera (height ``cam_h``, pitched ``pitch_deg``),
    standing on a 0.45 m box for ``box_share`` of the frames. Returns foot points (T, 2, 3), torso
    directions and pelvis in OpenCV camera coordinates, and the true up."""
    rng = np.random.default_rng(seed)
    p = np.radians(pitch_deg)
    # world (Z up, Y forward) -> camera: x right, y down, z forward; camera tilted down by pitch
    R = np.array([[1.0, 0, 0], [0, np.sin(p), -np.cos(p)], [0, np.cos(p), np.sin(p)]])
    cam = np.array([0.0, 0.0, cam_h])
    t = np.arange(T)
    xy = np.stack([1.5 * np.sin(t / 40.0), 5.0 + 1.5 * np.cos(t / 55.0)], 1)
    on_box = t < int(box_share * T)
    z0 = np.where(on_box, 0.45, 0.0)
    feet_w = np.stack([np.c_[xy + [-0.1, 0], z0], np.c_[xy + [0.1, 0], z0]], 1)   # heel/toe landmarks: on the sole
    # one foot lifted (swinging) every other half second
    swing = (t // 15) % 2 == 0
    feet_w[swing, 0, 2] += 0.15 * np.abs(np.sin(t[swing] / 3.0))
    feet_w[swing, 0, :2] += 0.02 * t[swing, None] % 0.3
    feet_w += rng.normal(0, 0.015, feet_w.shape)
    pelvis_w = np.c_[xy, z0 + 0.95]
    neck_w = pelvis_w + [0, 0, 0.5]

    def to_cam(P):
        return (P - cam) @ R.T

    up_cam = R @ np.array([0.0, 0.0, 1.0])
    return to_cam(feet_w), to_cam(neck_w) - to_cam(pelvis_w), to_cam(pelvis_w), up_cam


def floor_error(wf, feet_cam, on_floor):
    z = wf.to_world(feet_cam)[..., 2]
    return float(np.median(z[on_floor].min(1)))


def test_ransac_and_lowest_level_find_the_floor_under_a_box():
    """The pieces for a box-robust floor (not wired into estimate_world yet): RANSAC's plane is the
    floor's orientation, the lowest supported level along it is the floor, whoever stood on the box."""
    for share in (0.0, 0.3, 0.6):
        feet, torso, pelvis, up = scene(share)
        pts = tr.contact_points(feet, up, 30.0)
        nrm, _, support = tr.ransac_floor(pts, up)
        assert np.degrees(np.arccos(np.clip(nrm @ up, -1, 1))) < 3.0, share
        level = tr.lowest_level(pts @ nrm)
        on_floor = np.arange(len(feet)) >= int(share * len(feet))
        floor_true = np.median((feet[on_floor] @ nrm).min(1))
        assert abs(level - floor_true) < 0.03, (share, level, floor_true)


def test_estimate_world_on_one_floor():
    feet, torso, pelvis, up = scene(0.0)
    wf, info = tr.estimate_world(feet, torso, pelvis, np.ones(len(feet), bool), fps=30.0)
    assert abs(floor_error(wf, feet, np.ones(len(feet), bool))) < 0.03
    assert abs(info["camera_height"] - 1.5) < 0.05 and info["ground_source"] == "feet"


def test_lowest_level_ignores_a_few_low_outliers():
    rng = np.random.default_rng(1)
    h = np.r_[rng.normal(0.0, 0.01, 200), rng.normal(0.45, 0.01, 300), [-0.5, -0.4, -0.3]]
    assert abs(tr.lowest_level(h)) < 0.01
    assert abs(tr.lowest_level(rng.normal(1.0, 0.01, 50)) - 1.0) < 0.01


def test_implausible_camera_height_falls_back_to_the_pelvis():
    feet, torso, pelvis, up = scene(0.0, cam_h=1.5)
    bad = feet.copy()
    bad += up * 1.45   # feet drawn 1.45 m too high: the camera would be 5 cm above the floor
    wf, info = tr.estimate_world(bad, torso, pelvis, np.ones(len(feet), bool))
    assert info["ground_source"] == "pelvis" and "ground_suspect" in info
    assert abs(info["camera_height"] - 1.5) < 0.15
