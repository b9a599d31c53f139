"""scripts/make_detector_data.py: packing of per-clip records and the 2D error metric (fake arrays, no bpy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scripts import make_detector_data as mdd  # noqa: E402
from engine.pose import LM  # noqa: E402
from engine.skeleton import INDEX  # noqa: E402


def _fake_clip(T: int, name: str, rng: np.random.Generator, size=(480, 270)) -> dict:
    W, H = size
    j2d = rng.uniform([50, 50], [W - 50, H - 50], (T, 24, 2)).astype(np.float32)
    img = np.full((T, 33, 3), 0.5, np.float32)
    for n in mdd.COMPARABLE:          # BlazePose 3 px to the right of every comparable GT joint
        img[:, LM[n], 0] = (j2d[:, INDEX[n], 0] + 3.0) / W
        img[:, LM[n], 1] = j2d[:, INDEX[n], 1] / H
    valid = np.ones(T, bool)
    valid[0] = False
    img[0] = np.nan
    return {
        "landmarks_image": img, "landmarks_world": np.zeros((T, 33, 3), np.float32),
        "visibility": np.ones((T, 33), np.float32), "valid": valid, "times": np.arange(T) / 30.0,
        "frame_index": np.arange(T), "joints_world": rng.normal(size=(T, 24, 3)).astype(np.float32),
        "joints_camera": rng.normal(size=(T, 24, 3)).astype(np.float32), "joints_2d": j2d,
        "camera_extrinsics": np.tile(np.eye(4), (T, 1, 1)), "occluded": np.zeros((T, 24), bool),
        "self_occluded": np.zeros((T, 24), bool), "in_view": np.ones((T, 24), bool),
        "foot_contacts": np.zeros((T, 4), bool),
        "clip_name": name, "clip_subject": "cmu_01", "clip_seed": np.int64(T), "clip_group": "static",
        "camera_kind": "static", "camera_intrinsics": np.eye(3), "image_size": np.array(size, np.int32),
        "phenotype_values": np.full(6, 0.5), "render_s": np.float64(1.0), "pose_s": np.float64(0.5),
    }


def test_pack_roundtrip_and_error(tmp_path):
    rng = np.random.default_rng(0)
    clips = [_fake_clip(5, "a", rng), _fake_clip(7, "b", rng, size=(270, 480))]
    arrays = mdd.pack(clips)
    np.savez_compressed(tmp_path / "d.npz", **arrays)
    d = dict(np.load(tmp_path / "d.npz", allow_pickle=False))
    assert d["clip_start"].tolist() == [0, 5] and d["clip_length"].tolist() == [5, 7]
    assert d["landmarks_image"].shape == (12, 33, 3) and d["camera_extrinsics"].shape == (12, 4, 4)
    assert d["clip_name"].tolist() == ["a", "b"] and d["image_size"].tolist() == [[480, 270], [270, 480]]
    s, n = d["clip_start"][1], d["clip_length"][1]
    np.testing.assert_array_equal(d["joints_2d"][s:s + n], clips[1]["joints_2d"])
    err = mdd.comparable_error_px(d)       # per-clip image size applied; the NaN frames are skipped
    assert err["mean"] == pytest.approx(3.0, abs=1e-3)
    assert err["left_wrist"] == pytest.approx(3.0, abs=1e-3)


def test_pack_rejects_mismatched_lengths():
    rng = np.random.default_rng(1)
    clip = _fake_clip(4, "a", rng)
    clip["joints_2d"] = clip["joints_2d"][:3]
    with pytest.raises(AssertionError, match="joints_2d"):
        mdd.pack([clip])
