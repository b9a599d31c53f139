"""Training on the real detector's output: Rope's BlazePose-on-render pairs (scripts/train_rope.py
``DetectorPairs``, ``pair_losses``) and TP's engine-condition pairs (scripts/make_tp_engine_data.py).
Fake arrays, no rendering and no bpy."""

from __future__ import annotations

import numpy as np
import torch

from engine import skeleton as sk
from engine.geometry.frames import BC_TO_CV
from engine.rope import RopeConfig, RopeNet
from scripts import make_detector_data as mdd
from scripts import make_tp_engine_data as mtp
from scripts import train_rope as tr
from tests.test_detector_data import _fake_clip

SMALL = RopeConfig(dim=32, heads=2, intra_layers=1, cross_layers=1)


def _pairs_file(tmp_path, lengths=(12, 9), subjects=("cmu_01", "cmu_05")):
    rng = np.random.default_rng(3)
    clips = []
    for k, (T, s) in enumerate(zip(lengths, subjects)):
        c = _fake_clip(T, f"c{k}", rng)
        c["clip_subject"] = s
        c["landmarks_image"] = np.nan_to_num(c["landmarks_image"]) + k      # tells the clips apart
        c["landmarks_world"] = rng.normal(size=(T, 33, 3)).astype(np.float32) * 0.3
        clips.append(c)
    path = tmp_path / "pairs.npz"
    np.savez(path, **mdd.pack(clips))
    return path, clips


def test_detector_pairs_split_axes_and_windows(tmp_path):
    path, clips = _pairs_file(tmp_path)
    train = tr.DetectorPairs(path, 5, exclude=("cmu_05",))
    held = tr.DetectorPairs(path, 5, subjects=("cmu_05",))
    assert (train.N, train.subjects) == (12, ["cmu_01"])
    assert (held.N, held.subjects) == (9, ["cmu_05"])
    # targets in the body-camera frame: camera (OpenCV) joints turned by BC_TO_CV's inverse
    jc = clips[1]["joints_camera"].astype(np.float64)
    assert np.allclose(held.J.numpy(), jc @ BC_TO_CV, atol=1e-5)
    # bone lengths are the clip's median, the same in every frame
    assert torch.allclose(held.bones, held.bones[:1].expand_as(held.bones))
    # a window at a clip's first frame repeats that frame and never reaches into another clip
    b = held.batch(0, f=torch.tensor([0, held.N - 1]))
    assert torch.equal(b["image"][0, 0], b["image"][0, 2]) and torch.equal(b["image"][1, -1], b["image"][1, 2])
    assert float(b["image"][..., 0].min()) >= 1.0                                # clip 1's landmarks only


def test_mirroring_pairs_swaps_sides_and_undoes_itself(tmp_path):
    path, _ = _pairs_file(tmp_path)
    pairs = tr.DetectorPairs(path, 5)
    gen = torch.Generator().manual_seed(0)
    b = pairs.batch(6, gen)
    kw = dict(p_mirror=1.0, p_part=0.0, p_trunc=0.0, p_drop=0.0)
    once = tr.augment(b, gen, **kw)
    L, R = sk.INDEX["left_wrist"], sk.INDEX["right_wrist"]
    assert torch.allclose(once["J"][:, L], b["J"][:, R] * torch.tensor([-1.0, 1.0, 1.0]))
    assert torch.equal(once["bones"][:, L], b["bones"][:, R])
    twice = tr.augment(once, gen, **kw)
    for k in ("J", "bones", "image", "world", "vis"):
        assert torch.allclose(twice[k], b[k], atol=1e-6), k


def test_pair_losses_fall_on_a_tiny_overfit(tmp_path):
    path, _ = _pairs_file(tmp_path)
    pairs = tr.DetectorPairs(path, SMALL.window)
    gen = torch.Generator().manual_seed(0)
    batch = pairs.batch(16, gen)
    torch.manual_seed(0)
    net = RopeNet(SMALL)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(50):
        loss, parts, _ = tr.pair_losses(net, batch)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(parts) == {"pair_j3d", "pair_bone"}
    assert float(loss.detach()) < 0.6 * first, (first, float(loss.detach()))
    v = tr.validate_pairs(net, pairs)
    assert 0.0 < v["pair_pa_mpjpe"] <= v["pair_mpjpe"] + 1e-6


def test_align_yaw_recovers_the_turn_between_true_and_estimated_bodies():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(30, 24, 3))
    for deg in (-170.0, -37.0, 0.0, 64.0, 179.0):
        th = np.radians(deg)
        Rz = np.array([[np.cos(th), -np.sin(th), 0.0], [np.sin(th), np.cos(th), 0.0], [0.0, 0.0, 1.0]])
        est = gt @ Rz.T + rng.normal(size=gt.shape) * 0.01
        got = np.degrees(mtp.align_yaw(gt, est))
        assert abs((got - deg + 180.0) % 360.0 - 180.0) < 1.0, (deg, got)
