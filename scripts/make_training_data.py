"""Build the training/validation arrays from the mocap in data/mocap (docs/training_data.md).

    .venv/bin/python -m scripts.make_training_data --out .cache/training [--fps 30] [--obs-copies 1]

Writes ``motion_{train,val}.npz`` (vm24 ground truth, clips concatenated) and
``obs_{train,val}.npz`` (synthetic BlazePose landmarks, ``--obs-copies`` random cameras per clip).
The split is by performer (scripts.vmkit.mocap.dataset.VAL_SUBJECTS). Exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np


from engine import skeleton as sk
from scripts.vmkit.mocap.dataset import DEFAULT_ROOT, list_clips, load_motion
from scripts.vmkit.mocap.synth_landmarks import LANDMARK_NAMES, synthesize

log = logging.getLogger("make_training_data")


def _save(path: Path, **arrays) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def build(root: Path, out: Path, fps: float, obs_copies: int, seed: int, limit: int | None) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    entries = list_clips(root)[:limit]
    rng = np.random.default_rng(seed)
    per_split: dict[str, list] = {"train": [], "val": []}
    t0 = time.time()
    for k, e in enumerate(entries):
        m = load_motion(e, fps=fps)
        if m.num_frames < 4:
            continue
        per_split[e.split].append(m)
        if (k + 1) % 50 == 0:
            log.info("%d/%d clips, %.0f s", k + 1, len(entries), time.time() - t0)
    counts = {}
    for split, motions in per_split.items():
        if not motions:
            continue
        lengths = np.array([m.num_frames for m in motions])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        _save(out / f"motion_{split}.npz",
              format=np.array("video_mocap.training_motion"), format_version=np.array(1), fps=np.array(fps),
              joint_names=np.array(sk.JOINT_NAMES), parents=np.array(sk.PARENTS),
              contact_names=np.array(sk.CONTACT_JOINTS),
              clip_start=starts, clip_length=lengths,
              clip_name=np.array([m.name for m in motions]), clip_subject=np.array([m.subject for m in motions]),
              clip_source=np.array([m.source for m in motions]),
              rest_offsets=np.stack([m.rest_offsets for m in motions]).astype(np.float32),
              rotations=np.concatenate([m.rotations for m in motions]).astype(np.float32),
              root_translation=np.concatenate([m.root_translation for m in motions]).astype(np.float32),
              joints_world=np.concatenate([m.joints_world for m in motions]).astype(np.float32),
              foot_contacts=np.concatenate([m.foot_contacts for m in motions]))
        obs: dict[str, list] = {k: [] for k in ("image", "world", "visibility", "K", "world_to_cam", "image_size")}
        for copy in range(obs_copies):
            for m in motions:
                o = synthesize(m.joints_world, m.world_rotations(), rng)
                for key in obs:
                    obs[key].append(o[key])
        _save(out / f"obs_{split}.npz",
              format=np.array("video_mocap.training_obs"), format_version=np.array(1),
              landmark_names=np.array(LANDMARK_NAMES), copies=np.array(obs_copies),
              clip_start=starts, clip_length=lengths,
              landmarks_image=np.concatenate(obs["image"]), landmarks_world=np.concatenate(obs["world"]),
              landmarks_visibility=np.concatenate(obs["visibility"]),
              camera_intrinsics=np.stack(obs["K"]).astype(np.float32),
              camera_extrinsics=np.stack(obs["world_to_cam"]).astype(np.float32),
              image_size=np.stack(obs["image_size"]))
        counts[split] = int(lengths.sum())
        log.info("%s: %d clips, %d frames, subjects %s", split, len(motions), lengths.sum(),
                 sorted({m.subject for m in motions}))
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_ROOT, help="the data/mocap folder")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / ".cache" / "training")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--obs-copies", type=int, default=1, help="random cameras (observation sets) per clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N clips (quick runs)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if not args.data.is_dir():
        log.error("mocap folder not found: %s", args.data)
        return 1
    t = time.time()
    counts = build(args.data, args.out, args.fps, args.obs_copies, args.seed, args.limit)
    log.info("wrote %s in %.0f s: %s", args.out, time.time() - t, counts)
    return 0 if counts else 1


if __name__ == "__main__":
    from scripts.vmkit.bpy_exit import exit_process

    exit_process(main())
