"""Rope inference: BlazePose landmark track -> vm24 body pose in solve.py's body-camera frame.

    rope = Rope.load()                       # models/rope/{config.json, rope.safetensors}, strict
    out = rope.predict(image, world, visibility, valid, (W, H), device="cpu")

Same conventions as ``solve.solve_body`` + ``solve.measure_body``: ``rotations[:, 0]`` is the root
orientation in the body-camera frame (BlazePose world axes turned ``(x, z, -y)``), ``root`` the pelvis
relative to the landmarks' hip centre in that frame, ``rest_offsets`` one skeleton for the clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .. import skeleton as sk
from ..geometry import rotations as rot
from . import hierarchy as hi
from .config import RopeConfig
from .network import RopeNet, landmark_features, window_indices

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "models" / "rope"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "rope.safetensors"
HEAD_TOP_ABOVE_HEAD_JOINT = 0.10   # metres, for a 1.70 m body (as solve.measure_body)
GAP_VISIBILITY = 0.5               # visibility of landmarks interpolated over long gaps


@dataclass
class RopeOutput:
    rotations: np.ndarray         # (T, 24, 3, 3) local rotations; [:, 0] root in the body-camera frame
    root: np.ndarray              # (T, 3) pelvis relative to the landmarks' hip centre, body-camera frame
    rest_offsets: np.ndarray      # (24, 3) metres, one skeleton for the clip
    height: float                 # metres, top of the head to the sole
    joint_confidence: np.ndarray  # (T, 24) 0..1: mean visibility of each joint's own landmarks


def save_weights(net: RopeNet, directory: str | Path) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    net.cfg.save(d / CONFIG_NAME)
    save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(d / WEIGHTS_NAME))


def load_net(directory: str | Path = DEFAULT_DIR) -> RopeNet:
    """Build the network from ``config.json`` and load ``rope.safetensors`` strictly (any missing or
    unexpected key, or a shape mismatch, raises)."""
    d = Path(directory)
    if not (d / WEIGHTS_NAME).exists():
        raise FileNotFoundError(f"Rope weights not found: {d / WEIGHTS_NAME} (train them with "
                                f"python -m scripts.train_rope, or restore models/rope/ from the repository)")
    cfg = RopeConfig.load(d / CONFIG_NAME)
    net = RopeNet(cfg)
    net.load_state_dict(load_file(str(d / WEIGHTS_NAME)), strict=True)
    return net.eval()


def body_height(rest_offsets: np.ndarray) -> float:
    """Standing height (m) of a rest skeleton: head joint height + the head top above it (scaled by the
    spine length against the default skeleton's)."""
    pos = sk.rest_positions(rest_offsets)
    spine = [sk.INDEX[n] for n in ("spine1", "spine2", "spine3", "neck", "head")]
    s = np.linalg.norm(rest_offsets[spine], axis=-1).sum() / np.linalg.norm(sk.DEFAULT_REST_OFFSETS[spine], axis=-1).sum()
    return float(pos[sk.INDEX["head"], 2] + HEAD_TOP_ABOVE_HEAD_JOINT * s)


def _bridge_gaps(idx: np.ndarray, valid: np.ndarray, image: np.ndarray, world: np.ndarray, vis: np.ndarray):
    """Frames whose whole window has no detection (a gap longer than the window; training never shows
    the network one) get landmarks interpolated over the gap (``trajectory.fill_gaps``, held at the ends)
    with visibility x ``GAP_VISIBILITY``, and count as present. Shorter gaps stay missing: the network
    was trained with dropped frames in its window."""
    from ..trajectory import fill_gaps

    blind = ~valid[idx].any(1)                                                         # (T,)
    if not blind.any():
        return image, world, vis, valid
    image, world, vis = image.copy(), world.copy(), vis.copy()
    image[blind] = fill_gaps(image, valid)[blind]
    world[blind] = fill_gaps(world, valid)[blind]
    vis[blind] = GAP_VISIBILITY * fill_gaps(vis, valid)[blind]
    return image, world, vis, valid | blind


class Rope:
    """Inference wrapper around ``RopeNet``."""

    def __init__(self, net: RopeNet):
        self.net = net.eval()
        self.cfg = net.cfg

    @classmethod
    def load(cls, directory: str | Path = DEFAULT_DIR) -> "Rope":
        return cls(load_net(directory))

    @torch.no_grad()
    def predict(self, image: np.ndarray, world: np.ndarray, visibility: np.ndarray, valid: np.ndarray,
                image_size, *, fps: float = 30.0, smoothing: float = 0.25, device: str = "cpu",
                batch: int = 2048, report=None) -> RopeOutput:
        """LandmarkTrack arrays (engine/pose.py) -> RopeOutput. ``image_size``: (width, height) pixels.

        ``smoothing``: seconds of a zero-lag Savitzky-Golay filter (order 2) over the rotations (their 6D
        columns, re-orthonormalised) and the root, 0 = off. 0.25 s (7 frames at 30 fps) was picked on
        BlazePose run on renders of TRAINING performers (make_detector_data, not the dev set): jitter
        127 -> 88 (0.17 s) -> 61 (0.25 s) against 76 for the v1 solve, PA-MPJPE unchanged (100).
        ``report(i, n)`` is called after each batch (progress; it may raise to cancel)."""
        T = int(len(valid))
        valid = np.asarray(valid, bool)
        if T == 0 or not valid.any():
            raise ValueError("Rope needs at least one frame with a detected person")
        net = self.net.to(device)
        idx = window_indices(T, self.cfg.window)                                       # (T, W)
        image, world, visibility, present = _bridge_gaps(idx, valid, np.asarray(image, np.float32),
                                                         np.asarray(world, np.float32),
                                                         np.asarray(visibility, np.float32))
        img = torch.as_tensor(image, device=device)
        wld = torch.as_tensor(world, device=device)
        vis = torch.as_tensor(visibility, device=device)
        val = torch.as_tensor(present, device=device)
        size = torch.as_tensor(np.asarray(image_size, np.float32), device=device)
        own = torch.as_tensor(hi.membership(hi.INDEP), device=device)                 # (24, 33)
        own = own / own.sum(1, keepdim=True)
        R_out, root_out, rest_out, conf_out = [], [], [], []
        for a in range(0, T, batch):
            ix = torch.as_tensor(idx[a:a + batch], device=device)                    # (b, W)
            lm, glob, vis_c = landmark_features(img[ix], wld[ix], vis[ix], val[ix], size.expand(len(ix), 2))
            out = net(lm, glob, vis_c)
            R_out.append(rot.rot6d_cols_to_matrix(out["rot6d"]).cpu())              # (b, 24, 3, 3)
            root_out.append(out["root"].cpu())
            rest_out.append(out["rest"].cpu())
            conf_out.append((vis_c @ own.T).cpu())                                    # (b, 24)
            if report is not None:
                report(min(a + batch, T), T)
        R = torch.cat(R_out)
        root = torch.cat(root_out).numpy()
        if smoothing > 0 and T > 3:
            from ..trajectory import smooth

            six = smooth(rot.matrix_to_rot6d_cols(R).numpy(), fps, smoothing)             # (T, 24, 6)
            R = rot.rot6d_cols_to_matrix(torch.as_tensor(six))
            root = smooth(root, fps, smoothing)
        R = R.numpy()
        rest_all = torch.cat(rest_out).numpy()
        conf = torch.cat(conf_out).numpy()
        # one skeleton: median over the frames with a detection
        rest = np.median(rest_all[valid], axis=0).astype(np.float32)
        conf = np.where(valid[:, None], np.clip(conf, 0.0, 1.0), 0.0).astype(np.float32)
        return RopeOutput(rotations=R.astype(np.float32), root=root.astype(np.float32), rest_offsets=rest,
                          height=body_height(rest), joint_confidence=conf)
