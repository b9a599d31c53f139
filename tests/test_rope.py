"""Rope (engine/rope): rotations, strict loading, the inference contract, a tiny overfit run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy.spatial.transform import Rotation

from engine import skeleton as sk
from engine.geometry import rotations as rot
from engine.pose import LM
from engine.rope import Rope, RopeConfig, RopeNet, load_net, save_weights
from engine.rope import hierarchy as hi
from engine.rope.infer import DEFAULT_DIR, WEIGHTS_NAME, CONFIG_NAME

SMALL = RopeConfig(dim=32, heads=2, intra_layers=1, cross_layers=1)


def _track(T: int = 9, seed: int = 0, with_camera: bool = False):
    """A plausible landmark track: a standing skeleton's landmarks seen by a random camera, with noise."""
    from scripts.vmkit.mocap import synth_landmarks as sl

    rng = np.random.default_rng(seed)
    R = np.repeat(np.eye(3)[None, None], T, 0).repeat(sk.J, 1)
    Rw, P = sk.forward_kinematics(R, np.tile([0.0, 0.0, 0.95], (T, 1)), sk.DEFAULT_REST_OFFSETS)
    o = sl.synthesize(P, Rw, rng)
    out = (o["image"], o["world"], o["visibility"], o["detected"], tuple(int(v) for v in o["image_size"]))
    return (*out, o["world_to_cam"]) if with_camera else out


def _check_rotations(R: np.ndarray) -> None:
    assert np.isfinite(R).all()
    eye = np.einsum("...ji,...jk->...ik", R, R)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-4)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-4)


def test_rot6d_to_matrix_is_orthonormal_and_inverts():
    x = torch.randn(1000, 6, dtype=torch.float64) * 3
    R = rot.rot6d_cols_to_matrix(x)
    _check_rotations(R.numpy())
    Rs = torch.as_tensor(Rotation.random(200, random_state=1).as_matrix())
    np.testing.assert_allclose(rot.rot6d_cols_to_matrix(rot.matrix_to_rot6d_cols(Rs)).numpy(), Rs.numpy(), atol=1e-10)
    # the 6D numbers are the first two columns
    np.testing.assert_allclose(rot.matrix_to_rot6d_cols(Rs)[:, :3].numpy(), Rs[:, :, 0].numpy())


def test_hierarchy_levels_and_mirror():
    assert [len(hi.INDEP), len(hi.INTER), len(hi.FULCO), len(hi.WHOBO)] == [24, 11, 6, 1]
    m = hi.membership(hi.INDEP)
    assert (m.sum(1) >= 1).all()                      # every part sees some landmark
    mir = np.array(hi.LANDMARK_MIRROR)
    assert (mir[mir] == np.arange(33)).all() and mir[LM["left_knee"]] == LM["right_knee"]


@pytest.mark.parametrize("hidden", ["left_arm", "all_but_torso"])
def test_fully_hidden_part_still_gets_a_valid_rotation(hidden):
    torch.manual_seed(0)
    rope = Rope(RopeNet(SMALL))
    image, world, vis, valid, size = _track()
    arm = [LM[n] for n in ("left_shoulder", "left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb")]
    hide = arm if hidden == "left_arm" else [i for i in range(33) if i not in (11, 12, 23, 24)]
    image, world, vis = image.copy(), world.copy(), vis.copy()
    image[:, hide] = np.nan
    world[:, hide] = np.nan
    vis[:, hide] = 0.0
    out = rope.predict(image, world, vis, valid, size)
    _check_rotations(out.rotations)
    assert np.isfinite(out.root).all() and np.isfinite(out.rest_offsets).all()
    elbow = sk.INDEX["left_elbow"]
    assert out.joint_confidence[:, elbow].max() < out.joint_confidence[:, sk.INDEX["pelvis"]].min()


def test_config_and_weights_load_strictly(tmp_path):
    net = RopeNet(SMALL)
    save_weights(net, tmp_path)
    again = load_net(tmp_path)
    assert again.cfg == SMALL
    # a config key the dataclass does not know, or one missing, fails
    doc = json.loads((tmp_path / CONFIG_NAME).read_text())
    bad = dict(doc, config={**doc["config"], "depth": 3})
    (tmp_path / CONFIG_NAME).write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="unknown"):
        load_net(tmp_path)
    missing = dict(doc, config={k: v for k, v in doc["config"].items() if k != "window"})
    (tmp_path / CONFIG_NAME).write_text(json.dumps(missing))
    with pytest.raises(ValueError, match="missing"):
        load_net(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps(doc))
    # a renamed tensor (wrong key) fails, and so does an extra one
    sd = load_file(str(tmp_path / WEIGHTS_NAME))
    key = next(iter(sd))
    save_file({("renamed." + k if k == key else k): v for k, v in sd.items()}, str(tmp_path / WEIGHTS_NAME))
    with pytest.raises(RuntimeError, match="Missing key|Unexpected key"):
        load_net(tmp_path)
    save_file({**sd, "extra.weight": torch.zeros(2)}, str(tmp_path / WEIGHTS_NAME))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_net(tmp_path)


def test_tiny_overfit_lowers_the_loss(tmp_path):
    from scripts import train_rope as tr

    # a tiny motion file: one clip of a waving arm and a turning body
    T = 40
    t = np.linspace(0, 2 * np.pi, T)
    rv = np.zeros((T, sk.J, 3))
    rv[:, 0, 2] = 0.5 * np.sin(t)
    rv[:, sk.INDEX["left_shoulder"], 1] = 0.8 * np.sin(2 * t)
    rv[:, sk.INDEX["right_knee"], 0] = 0.6 * (1 + np.sin(t))
    q = rot.matrix_to_quat_wxyz(rot.rotvec_to_matrix(torch.as_tensor(rv))).numpy()
    np.savez(tmp_path / "motion_train.npz", clip_start=np.array([0]), clip_length=np.array([T]),
             clip_subject=np.array(["cmu_01"]), rotations=q.astype(np.float32),
             root_translation=np.tile([0.0, 0.0, 0.95], (T, 1)).astype(np.float32),
             rest_offsets=sk.DEFAULT_REST_OFFSETS[None].astype(np.float32))
    m = tr.Motion(tmp_path / "motion_train.npz")
    sampler = tr.Sampler(m, SMALL.window, 1, seed=0, cal={})
    gen = torch.Generator().manual_seed(0)
    batch = tr.augment(sampler.batch(32, gen), gen)
    torch.manual_seed(0)
    net = RopeNet(SMALL)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss, parts, _ = tr.losses(net, batch)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.6 * first, (first, float(loss.detach()))


@pytest.mark.skipif(not (DEFAULT_DIR / WEIGHTS_NAME).exists(), reason="no shipped weights")
def test_shipped_weights_load_and_follow_the_contract():
    rope = Rope.load()
    T = 9
    image, world, vis, valid, size, E = _track(T, with_camera=True)
    valid = valid.copy()
    valid[3] = False                                   # a missed frame
    image[3], world[3], vis[3] = np.nan, np.nan, 0.0
    out = rope.predict(image, world, vis, valid, size, device="cpu")
    assert out.rotations.shape == (T, 24, 3, 3) and out.root.shape == (T, 3)
    assert out.rest_offsets.shape == (24, 3) and out.joint_confidence.shape == (T, 24)
    _check_rotations(out.rotations)
    assert np.isfinite(out.root).all() and np.isfinite(out.rest_offsets).all()
    assert 1.3 < out.height < 2.2
    assert (out.joint_confidence[3] == 0).all() and (out.joint_confidence >= 0).all()
    # the body's forward axis (-Y at rest) seen from the camera: the true one is CV_TO_BC @ R_wc @ (0, -1, 0)
    from engine.geometry.frames import CV_TO_BC

    true_fwd = CV_TO_BC @ E[:3, :3] @ np.array([0.0, -1.0, 0.0])
    fwd = out.rotations[:, 0] @ np.array([0.0, -1.0, 0.0])
    assert (fwd[valid] @ true_fwd > 0.7).all(), (fwd[valid], true_fwd)


def test_body_stage_rope_follows_the_stage_contract(tmp_path):
    from engine import stages
    from engine.pose import LandmarkTrack
    from engine.stages.records import BodyMotion, Clip

    torch.manual_seed(0)
    save_weights(RopeNet(SMALL), tmp_path)
    stage = stages.build("body", "rope", "cpu", {"weights": str(tmp_path), "batch": 4})
    image, world, vis, valid, size = _track(T=10)
    track = LandmarkTrack(image=image, world=world, visibility=vis, valid=valid, times=np.arange(10) / 30.0,
                          frame_index=np.arange(10))
    calls = []
    m = stage(track, Clip(fps=30.0, width=size[0], height=size[1], focal_px=1000.0), lambda i, n: calls.append((i, n)))
    assert isinstance(m, BodyMotion) and calls and calls[-1] == (10, 10)
    assert m.rotations.shape == (10, 24, 3, 3) and m.joints.shape == (10, 24, 3)
    np.testing.assert_allclose(m.joints[:, 0], m.root, atol=1e-6)
    assert m.anchors.shape[:2] == m.anchor_weights.shape and len(m.anchor_landmarks) == m.anchors.shape[1]
    assert m.foot_anchors and max(m.foot_anchors) < m.anchors.shape[1]


def test_body_stage_rope_with_the_2d_refinement(tmp_path):
    """``--option body.refine=true``: the same contract, rotations changed where the image disagrees."""
    from engine import stages
    from engine.pose import LandmarkTrack
    from engine.stages.records import Clip

    torch.manual_seed(0)
    save_weights(RopeNet(SMALL), tmp_path)
    image, world, vis, valid, size = _track(T=10)
    track = LandmarkTrack(image=image, world=world, visibility=vis, valid=valid, times=np.arange(10) / 30.0,
                          frame_index=np.arange(10))
    clip = Clip(fps=30.0, width=size[0], height=size[1], focal_px=1000.0)
    plain = stages.build("body", "rope", "cpu", {"weights": str(tmp_path)})(track, clip, lambda i, n: None)
    calls = []
    refined = stages.build("body", "rope", "cpu", {"weights": str(tmp_path), "refine": True, "refine_iterations": 5})(
        track, clip, lambda i, n: calls.append((i, n)))
    assert calls and calls[-1] == (10, 10)
    _check_rotations(refined.rotations)
    assert np.abs(refined.rotations - plain.rotations).max() > 1e-3      # an untrained net disagrees with the image
    np.testing.assert_allclose(refined.joints[:, 0], refined.root, atol=1e-6)
    np.testing.assert_array_equal(refined.rest_offsets, plain.rest_offsets)


@pytest.mark.skipif(not (DEFAULT_DIR / WEIGHTS_NAME).exists(), reason="no shipped weights")
def test_cli_runs_with_body_rope(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from engine.result import read_result

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "rope.npz"
    p = subprocess.run([sys.executable, "-m", "engine", "run", str(root / "engine" / "data" / "sample_walk.mp4"),
                        "--out", str(out), "--body", "rope"], cwd=root, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    r = read_result(out)
    meta = json.loads(str(r["meta_json"]))
    assert meta["options"]["body"]["name"] == "rope"
    assert np.isfinite(r["joints_world"]).all()
    path = np.linalg.norm(r["root_translation"][-1, :2] - r["root_translation"][0, :2])
    assert path > 1.0, path                                      # the walker travels (trajectory ran on Rope's body)


def test_long_detection_gap_is_bridged_and_flagged():
    torch.manual_seed(0)
    rope = Rope(RopeNet(SMALL))
    image, world, vis, valid, size = _track(T=30)
    image, world, vis, valid = image.copy(), world.copy(), vis.copy(), valid.copy()
    valid[8:22] = False                                  # a gap much longer than the 5-frame window
    image[~valid], world[~valid], vis[~valid] = np.nan, np.nan, 0.0
    out = rope.predict(image, world, vis, valid, size, smoothing=0.25)
    _check_rotations(out.rotations)
    assert np.isfinite(out.root).all()
    assert (out.joint_confidence[~valid] == 0).all() and (out.joint_confidence[valid] > 0).any()


def test_facing_check_turns_a_backwards_rope_body_to_blazepose_facing():
    """``body.facing=blazepose``: frames where Rope's torso faces > flip_deg away from BlazePose's own
    torso are turned about the vertical to BlazePose's facing; the rest stay Rope's."""
    from engine.pose import LandmarkTrack
    from engine.rope.infer import RopeOutput
    from engine.stages.body_rope import face_like_blazepose

    T = 6
    # BlazePose: a body facing the camera (its left at image right, +x), world axes x right, y down, z away
    _, P = sk.forward_kinematics(np.repeat(np.eye(3)[None, None], 1, 0).repeat(sk.J, 1), np.zeros((1, 3)),
                                 sk.DEFAULT_REST_OFFSETS)
    world = np.zeros((T, 33, 3), np.float32)
    for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder"):
        x, y, z = P[0, sk.INDEX[n]]
        world[:, LM[n]] = (x, -z, y)                       # body-camera (x right, y away, z up) -> BlazePose
    vis = np.ones((T, 33), np.float32)
    vis[4, LM["left_shoulder"]] = 0.2                      # frame 4: BlazePose did not see the whole torso
    track = LandmarkTrack(image=np.zeros((T, 33, 3), np.float32), world=world, visibility=vis,
                          valid=np.ones(T, bool), times=np.arange(T) / 30.0, frame_index=np.arange(T))
    # Rope: turned 170 degrees about +Z (backwards) on frames 0-4, 30 degrees on frame 5
    turns = [170, 170, -175, 170, 170, 30]
    R = np.repeat(np.eye(3)[None, None], T, 0).repeat(sk.J, 1).astype(np.float32)
    R[:, 0] = Rotation.from_euler("z", np.array(turns, float)[:, None], degrees=True).as_matrix()
    root = np.tile(np.array([0.0, 0.02, 0.01], np.float32), (T, 1))
    out = RopeOutput(rotations=R, root=root, rest_offsets=sk.DEFAULT_REST_OFFSETS.astype(np.float32), height=1.7,
                     joint_confidence=np.ones((T, sk.J), np.float32))
    fixed = face_like_blazepose(out, track, flip_deg=100.0)
    _, Pf = sk.forward_kinematics(fixed.rotations.astype(np.float64), fixed.root.astype(np.float64),
                                  sk.DEFAULT_REST_OFFSETS)
    lh, rh = Pf[:, sk.INDEX["left_hip"]], Pf[:, sk.INDEX["right_hip"]]
    for t in (0, 1, 2, 3):                                  # turned back: left hip at +x, level in depth
        assert lh[t, 0] > rh[t, 0] and abs(lh[t, 1] - rh[t, 1]) < 1e-3, t
        np.testing.assert_allclose(fixed.root[t], Rotation.from_euler("z", -turns[t], degrees=True).apply(root[t]),
                                   atol=1e-5)
    np.testing.assert_array_equal(fixed.rotations[4:], out.rotations[4:])     # torso unseen; 30 < 100 degrees
    np.testing.assert_array_equal(fixed.root[4:], out.root[4:])
    np.testing.assert_array_equal(fixed.rotations[:, 1:], out.rotations[:, 1:])  # only the root turns
