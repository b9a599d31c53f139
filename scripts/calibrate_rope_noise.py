"""Measure how the real BlazePose errs on renders of training performers, for Rope's training noise.

    .venv/bin/python -m scripts.calibrate_rope_noise [--detector .cache/detector/blazepose_renders.npz]
        [--out .cache/rope_calibration.json]

Input: ``scripts.make_detector_data`` output (BlazePose on Workbench renders of anny driven by TRAINING
performers; never the dev set). Over detected frames, with the landmarks that name the same anatomy as
a vm24 joint (shoulders, elbows, wrists, knees, ankles):

- world: BlazePose world landmarks rigidly aligned (Kabsch, per frame) to the ground-truth camera-frame
  joints; the residual RMS per axis (x, y, z) for joints not hidden by an occluder, and the angle of
  the aligning rotation (BlazePose's world axes are not exactly the camera's);
- image: 2D distance to the projected ground truth, in pixels per 400 px of body diagonal (the unit
  of ``synth_landmarks``), for visible and occluded joints;
- visibility: the share of occluder-hidden landmarks that BlazePose still reports with visibility > 0.5;
- hips: BlazePose's hip points in the ground-truth pelvis frame (x left, y back, z up), symmetrised.

``scripts.train_rope --calibration`` turns these numbers into extra corruption on top of
``synth_landmarks.synthesize`` (train_rope.calibrated_corruption).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine import skeleton as sk
from engine.pose import LM
from scripts.vmkit import metrics

ROOT = Path(__file__).resolve().parents[1]
COMPARABLE = [f"{s}_{p}" for p in ("shoulder", "elbow", "wrist", "knee", "ankle") for s in ("left", "right")]


def calibrate(d: dict[str, np.ndarray]) -> dict:
    v = d["valid"].astype(bool)
    W = d["landmarks_world"][v].astype(np.float64)                 # (N, 33, 3) camera axes, hip-centred
    G = d["joints_camera"][v].astype(np.float64)                   # (N, 24, 3)
    li = [LM[n] for n in COMPARABLE]
    ji = [sk.INDEX[n] for n in COMPARABLE]
    occ = d["occluded"][v][:, ji].astype(bool)
    s, R, t = metrics.similarity_transform(W[:, li], G[:, ji], scale=False)
    Wa = metrics.apply_similarity(s, R, t, W)
    res = Wa[:, li] - G[:, ji]                                     # (N, 10, 3)
    angle = np.degrees(np.arccos(np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    size = np.repeat(d["image_size"], d["clip_length"], 0)[v]
    px = d["landmarks_image"][v][..., :2] * size[:, None]
    j2 = d["joints_2d"][v]
    diag = np.linalg.norm(j2.max(1) - j2.min(1), axis=-1)
    e2 = np.linalg.norm(px[:, li] - j2[:, ji], axis=-1) / diag[:, None] * 400.0
    vis = d["visibility"][v][:, li]
    # hips in the ground-truth pelvis frame
    x = G[:, sk.INDEX["left_hip"]] - G[:, sk.INDEX["right_hip"]]
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    up = G[:, sk.INDEX["spine1"]] - G[:, 0]
    z = up - (up * x).sum(-1, keepdims=True) * x
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    F = np.stack([x, np.cross(z, x), z], -1)                       # columns: left, back, up
    off_l = np.einsum("nji,nj->ni", F, Wa[:, LM["left_hip"]] - G[:, sk.INDEX["left_hip"]]).mean(0)
    off_r = np.einsum("nji,nj->ni", F, Wa[:, LM["right_hip"]] - G[:, sk.INDEX["right_hip"]]).mean(0)
    hip = 0.5 * (off_l + off_r * np.array([-1.0, 1.0, 1.0]))      # left-side offset, symmetrised
    return {
        "frames": int(v.sum()), "clips": int(len(d["clip_length"])), "detection_rate": float(v.mean()),
        "world_rms_xyz": np.sqrt((res[~occ] ** 2).mean(0)).tolist(),
        "world_error_visible": float(np.linalg.norm(res[~occ], axis=-1).mean()),
        "world_error_occluded": float(np.linalg.norm(res[occ], axis=-1).mean()) if occ.any() else None,
        "world_rotation_deg_median": float(np.median(angle)),
        "world_rotation_deg_p90": float(np.percentile(angle, 90)),
        "image_px400_visible_median": float(np.median(e2[~occ])),
        "image_px400_visible_mean": float(e2[~occ].mean()),
        "image_px400_occluded_mean": float(e2[occ].mean()) if occ.any() else None,
        "visibility_visible_mean": float(vis[~occ].mean()),
        "occluded_visibility_above_half": float((vis[occ] > 0.5).mean()) if occ.any() else None,
        "hip_offset_pelvis_frame": hip.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", type=Path, default=ROOT / ".cache" / "detector" / "blazepose_renders.npz")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "rope_calibration.json")
    args = ap.parse_args(argv)
    d = np.load(args.detector, allow_pickle=False)
    cal = calibrate({k: d[k] for k in d.files})
    cal["source"] = str(args.detector)
    args.out.write_text(json.dumps(cal, indent=1) + "\n")
    print(json.dumps(cal, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
