"""Pick Rope's output smoothing on BlazePose run on renders of TRAINING performers (not the dev set).

    .venv/bin/python -m scripts.rope_smoothing_check [--weights models/rope]
        [--detector .cache/detector/blazepose_renders.npz]

For every clip of ``make_detector_data`` with at least 10 detected frames: the v1 solve and Rope with
several smoothing choices (output Savitzky-Golay seconds; optionally the landmarks pre-filtered as v1
does), scored in the camera frame on the detected frames: PA-MPJPE (mm) and jitter of the
pelvis-relative joints (10 m/s^3, all frames). Prints one line per variant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from engine import trajectory
from engine.rope import Rope
from engine.rope.infer import DEFAULT_DIR
from scripts.eval_rope import joints_camera, v1_body
from scripts.vmkit import metrics

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"v1": None, "rope_out0": (0.0, 0.0), "rope_out0.17": (0.0, 0.17), "rope_out0.25": (0.0, 0.25),
            "rope_in0.17_out0.17": (0.17, 0.17)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--detector", type=Path, default=ROOT / ".cache" / "detector" / "blazepose_renders.npz")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    d = np.load(args.detector, allow_pickle=False)
    rope = Rope.load(args.weights)
    fps = float(d["fps"])
    res: dict[str, dict[str, list[float]]] = {k: {"pa": [], "jit": []} for k in VARIANTS}
    jit_gt = []
    rel = lambda P: P - P[:, :1]  # noqa: E731
    for c, (a, n) in enumerate(zip(d["clip_start"], d["clip_length"])):
        s_ = slice(a, a + n)
        v = d["valid"][s_].astype(bool)
        if v.sum() < 10:
            continue
        G = d["joints_camera"][s_].astype(np.float64)
        tr = {"image": d["landmarks_image"][s_], "world": d["landmarks_world"][s_],
              "visibility": d["visibility"][s_], "valid": v}
        jit_gt.append(metrics.jitter(rel(G), fps))
        for k, opt in VARIANTS.items():
            if opt is None:
                R, root, rest = v1_body(tr, fps)
            else:
                img, wld = tr["image"], tr["world"]
                if opt[0] > 0:
                    wld = np.where(v[:, None, None], trajectory.smooth(trajectory.fill_gaps(wld, v), fps, opt[0]), np.nan)
                    img = np.where(v[:, None, None], trajectory.smooth(trajectory.fill_gaps(img, v), fps, opt[0]), np.nan)
                o = rope.predict(img, wld, tr["visibility"], v, tuple(d["image_size"][c]), fps=fps, smoothing=opt[1])
                R, root, rest = o.rotations, o.root, o.rest_offsets
            P = joints_camera(R, root, rest)
            s, Rr, t = metrics.similarity_transform(P[v], G[v])
            res[k]["pa"].append(float((np.linalg.norm(metrics.apply_similarity(s, Rr, t, P[v]) - G[v], axis=-1) * 1000).mean()))
            res[k]["jit"].append(metrics.jitter(rel(P), fps))
    print(f"{len(jit_gt)} clips; ground-truth jitter {np.mean(jit_gt):.1f}")
    for k, r in res.items():
        print(f"{k:22s} PA-MPJPE {np.mean(r['pa']):6.1f}  jitter {np.mean(r['jit']):6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
