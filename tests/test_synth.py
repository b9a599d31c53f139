"""The synthetic renderer: camera conventions (pure numpy) and a tiny Workbench render whose ground
truth must project onto the rendered body."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scripts.vmkit.synth.cameras import intrinsics, look_at, project, world_to_opencv  # noqa: E402


def test_look_at_opencv_convention():
    eye = np.array([0.0, -4.0, 1.5])
    M = look_at(eye, np.array([0.0, 0.0, 1.0]))
    T = world_to_opencv(M)
    R, t = T[:3, :3], T[:3, 3]
    assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
    assert np.allclose(-R.T @ t, eye)                        # camera centre
    K = intrinsics(35.0, 36.0, 640, 480)
    pts = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [1.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
    uv, z = project(pts, K, T)
    assert np.allclose(uv[0], [320, 240], atol=1e-6)                 # the look-at target is the centre
    assert uv[1, 1] < uv[0, 1]                               # higher in the world = up in the image (y down)
    assert uv[2, 0] > uv[0, 0]                               # +X is image-right when looking along +Y
    assert z[3] > z[0] > 0                                   # farther along the view = larger depth


def test_render_projection_matches_image(tmp_path):
    pytest.importorskip("bpy")
    pytest.importorskip("anny")
    import av
    from scripts.vmkit.synth.body import procedural_walk
    from scripts.vmkit.synth.render import render_clip
    from scripts.vmkit.synth.spec import CameraSpec, Occluder, SceneSpec

    body = procedural_walk(2, 30.0, speed=1.0, heading_deg=90.0)        # walks toward +X, across the view
    green = (0.05, 0.9, 0.05)
    spec = SceneSpec(width=64, height=48, skin_rgb=green, top_rgb=green, bottom_rgb=green,
                     floor_kind="checker", floor_rgb_a=(0.3, 0.3, 0.8), floor_rgb_b=(0.2, 0.2, 0.6),
                     background="world", world_rgb=(0.8, 0.2, 0.2), shadows=False,
                     camera=CameraSpec(kind="static", focal_mm=35.0, distance_m=4.0, height_m=1.2,
                                       azimuth_deg=10.0, target_height_m=0.9),
                     # a low wall 30% of the way from the body to the camera: hides knees and below
                     occluders=[Occluder("box", (0.3 * 4.0 * np.sin(np.radians(10.0)),
                                                 -0.3 * 4.0 * np.cos(np.radians(10.0)), 0.4),
                                         (1.6, 0.2, 0.8), rot_z_deg=10.0, rgb=(0.9, 0.9, 0.9))])
    png = tmp_path / "png"
    stats = render_clip(spec, body, tmp_path / "c.mp4", tmp_path / "c_gt.npz", png_dir=png, crf=18)
    assert stats["frames"] == 2
    gt = np.load(tmp_path / "c_gt.npz", allow_pickle=False)
    assert gt["joints_world"].shape == (2, 24, 3) and gt["occluded"].shape == (2, 24)
    assert str(gt["joint_names"][0]) == "pelvis" and str(gt["camera_kind"]) == "static"
    assert tuple(gt["image_size"]) == (64, 48)
    with av.open(str(tmp_path / "c.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 2 and frames[0].shape == (48, 64, 3)

    import cv2
    uv, z = project(gt["joints_world"], gt["camera_intrinsics"], gt["camera_extrinsics"])
    assert (z > 0).all()
    for i in range(2):
        img = cv2.imread(str(png / f"{i:04d}.png"))[..., ::-1].astype(int)       # RGB
        is_body = (img[..., 1] > img[..., 0] + 40) & (img[..., 1] > img[..., 2] + 40)
        names = list(gt["joint_names"])
        for name in ("pelvis", "spine2", "neck", "left_shoulder"):
            u, v = np.round(uv[i, names.index(name)]).astype(int)
            win = is_body[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2]
            assert win.any(), f"frame {i}: {name} projects to ({u}, {v}) which is not on the body"
        # The visible silhouette spans the joints above the wall left to right and up to the head.
        ys, xs = np.nonzero(is_body)
        top = [names.index(n) for n in ("head", "neck", "left_shoulder", "right_shoulder", "pelvis")]
        assert xs.min() - 2 <= uv[i, top, 0].min() and uv[i, top, 0].max() <= xs.max() + 2
        assert ys.min() - 2 <= uv[i, top, 1].min()
        # Knees and feet are behind the wall: flagged occluded, and not body-coloured in the image.
        low = [names.index(n) for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
        assert gt["occluded"][i, low].all()
        from scripts.vmkit.synth.spec import occluder_flags
        assert (occluder_flags(gt["camera_matrix_world_blender"][i, :3, 3], gt["joints_world"][i:i + 1].astype(float),
                               spec.occluders)[0] == gt["occluded"][i]).all(), "numpy ray maths != BVH ray casts"
        assert not gt["occluded"][i, top].any()
        for j in low:
            u, v = np.round(uv[i, j]).astype(int)
            assert not is_body[v, u], f"frame {i}: occluded {names[j]} at ({u}, {v}) looks like the body"


def _stick_walker(T: int, speed: float = 1.0) -> np.ndarray:
    """(T, 24, 3) vm24 joints: the engine's rest skeleton (T-pose) sliding along +X at ``speed`` m/s."""
    from engine.skeleton import DEFAULT_REST_OFFSETS, PARENTS

    rest = np.zeros_like(DEFAULT_REST_OFFSETS)
    for j, p in enumerate(PARENTS):
        rest[j] = DEFAULT_REST_OFFSETS[j] + (rest[p] if p >= 0 else 0.0)
    x = speed * (np.arange(T) / 30.0 - (T - 1) / 60.0)
    return rest[None] + np.stack([x, np.zeros(T), np.zeros(T)], 1)[:, None]


def test_spec_json_roundtrip_and_occluders_on_line_of_sight():
    import json
    from dataclasses import asdict

    from scripts.vmkit.synth.spec import camera_track, sample_spec, spec_from_json

    joints = _stick_walker(30, speed=2.0)
    pelvis = joints[:, 0]
    for seed in range(5):
        spec = sample_spec(np.random.default_rng(seed), "occluded", joints, seed=seed)
        assert spec_from_json(json.dumps(asdict(spec))) == spec
        assert spec.occluders, "the occluded group must place occluders"
        eye = camera_track(spec.camera, pelvis, 30.0)[0, :3, 3]
        for o in spec.occluders:
            c = np.array(o.center[:2])
            # between camera and person, and never on the walked path
            assert np.linalg.norm(c - eye[:2]) < np.linalg.norm(pelvis[:, :2] - eye[:2], axis=1).max()
            assert np.linalg.norm(pelvis[:, :2] - c, axis=1).min() > 0.35


def test_occluder_ray_maths_and_occlusion_rule():
    from scripts.vmkit.synth.spec import (OCCLUDED_FRACTION, TORSO_VISIBLE_MIN, Occluder, camera_track, in_view_flags,
                            occluder_flags, occlusion_ok, occlusion_stats, sample_spec)

    # Known geometry: camera at -Y looking at a person at the origin.
    joints = _stick_walker(1, speed=0.0)                      # (1, 24, 3), pelvis at (0, 0, 0.95)
    eye = np.array([0.0, -4.0, 1.2])
    names = __import__("engine.skeleton", fromlist=["JOINT_NAMES"]).JOINT_NAMES
    low = [names.index(n) for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    wall = Occluder("box", (0.0, -1.5, 0.4), (2.0, 0.2, 0.8), rot_z_deg=5.0)       # hides the legs
    f = occluder_flags(eye, joints, [wall])[0]
    assert f[low].all() and not f[[names.index("head"), names.index("pelvis")]].any()
    beside = Occluder("pillar", (1.0, -1.5, 1.5), (0.3, 0.3, 3.0))                  # off to the side
    assert not occluder_flags(eye, joints, [beside]).any()
    front = Occluder("pillar", (0.0, -1.5, 1.5), (0.3, 0.3, 3.0))                   # on the line of sight
    assert occluder_flags(eye, joints, [front])[0, names.index("pelvis")]
    behind = Occluder("box", (0.0, 1.5, 1.0), (2.0, 0.2, 2.0))                      # behind the person
    assert not occluder_flags(eye, joints, [behind]).any()
    # The rule itself.
    flags = np.zeros((10, 24), bool)
    assert not occlusion_ok(flags)                                                 # nothing hidden
    flags[:, low] = True
    assert occlusion_ok(flags) and occlusion_stats(flags)["torso_visible_fraction"] == 1.0
    flags[:5, 0] = True                                                            # pelvis hidden half the time
    assert not occlusion_ok(flags)

    # Sampled scenes: a walker and a person standing still both get a partial occlusion, reproducibly.
    for speed in (1.5, 0.0):
        joints = _stick_walker(45, speed=speed)
        for seed in range(4):
            spec = sample_spec(np.random.default_rng([seed, 2]), "occluded", joints, seed=seed)
            again = sample_spec(np.random.default_rng([seed, 2]), "occluded", joints, seed=seed)
            assert spec == again
            eye = camera_track(spec.camera, joints[:, 0], 30.0)[0, :3, 3]
            s = occlusion_stats(occluder_flags(eye, joints, spec.occluders))
            assert OCCLUDED_FRACTION[0] <= s["occluded_fraction"] <= OCCLUDED_FRACTION[1], (speed, seed, s)
            assert s["torso_visible_fraction"] >= TORSO_VISIBLE_MIN, (speed, seed, s)
            assert in_view_flags(spec, joints).all(1).mean() >= 0.95                 # static camera frames the body
