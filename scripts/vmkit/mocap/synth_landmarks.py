"""Synthetic BlazePose-like observations from vm24 motion (for training without video).

Per clip a random static camera looks at the performer; the 33 BlazePose landmarks (mediapipe
``PoseLandmark`` order) are made from the vm24 joints and the world rotations of the head, hands
and feet (fixed offsets in those joints' rest frames), projected, then corrupted the way the real
detector is: Gaussian noise (larger in depth), a per-clip landmark bias, random dropouts, DPMesh-style
rectangular occluders and image truncation (those landmarks get low visibility and extra noise),
self-occlusion of the far side, and whole missed frames.

Outputs follow docs/result_format.md for the landmark fields:
- ``image`` (T, 33, 3): x, y normalised to the image, z relative depth (hips-midpoint origin, x scale);
  NaN in missed frames.
- ``world`` (T, 33, 3): metres, origin at the hip landmarks' midpoint, camera axes (x right, y down,
  z away).
- ``visibility`` (T, 33) in [0, 1]; 0 in missed frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine import skeleton as sk
from engine.landmarks import LANDMARK_NAMES

NUM_LANDMARKS = len(LANDMARK_NAMES)

# landmark -> (vm24 joint, offset in that joint's rest frame (T-pose, facing -Y, left +X), metres).
# Left-side offsets; right side mirrors x.
_L = {
    "nose": ("head", (0.0, -0.10, 0.05)),
    "left_eye_inner": ("head", (0.015, -0.085, 0.085)), "left_eye": ("head", (0.032, -0.08, 0.088)),
    "left_eye_outer": ("head", (0.048, -0.07, 0.088)), "left_ear": ("head", (0.075, -0.005, 0.07)),
    "mouth_left": ("head", (0.025, -0.09, 0.015)),
    "left_shoulder": ("left_shoulder", (0.0, 0.0, 0.0)), "left_elbow": ("left_elbow", (0.0, 0.0, 0.0)),
    "left_wrist": ("left_wrist", (0.0, 0.0, 0.0)),
    "left_pinky": ("left_hand", (-0.01, 0.04, 0.0)), "left_index": ("left_hand", (0.0, -0.02, 0.0)),
    "left_thumb": ("left_wrist", (0.05, -0.045, -0.01)),
    "left_hip": ("left_hip", (0.01, 0.0, 0.04)), "left_knee": ("left_knee", (0.0, 0.0, 0.0)),
    "left_ankle": ("left_ankle", (0.0, 0.0, 0.0)), "left_heel": ("left_ankle", (0.0, 0.05, -0.06)),
    "left_foot_index": ("left_foot", (0.0, -0.06, -0.015)),
}


def _table() -> tuple[np.ndarray, np.ndarray]:
    joint = np.zeros(NUM_LANDMARKS, int)
    off = np.zeros((NUM_LANDMARKS, 3))
    for i, n in enumerate(LANDMARK_NAMES):
        if n in _L:
            j, o = _L[n]
            joint[i], off[i] = sk.INDEX[j], o
        else:
            src = n.replace("right", "left")
            j, o = _L[src]
            joint[i] = sk.INDEX[j.replace("left", "right")]
            off[i] = (-o[0], o[1], o[2])
    return joint, off


LANDMARK_JOINT, LANDMARK_OFFSET = _table()
LEFT_RIGHT = [(i, LANDMARK_NAMES.index(n.replace("left", "right"))) for i, n in enumerate(LANDMARK_NAMES)
              if n.startswith("left") or n == "mouth_left"]


def landmarks_from_joints(joints: np.ndarray, world_rot: np.ndarray,
                          offset: np.ndarray | None = None) -> np.ndarray:
    """(T, 33, 3) world landmark points from vm24 joints (T, 24, 3) and world rotations (T, 24, 3, 3).

    ``offset`` (33, 3) replaces ``LANDMARK_OFFSET`` (e.g. offsets calibrated on the real detector)."""
    off = LANDMARK_OFFSET if offset is None else offset
    return joints[:, LANDMARK_JOINT] + np.einsum("tlab,lb->tla", world_rot[:, LANDMARK_JOINT], off)


@dataclass
class Camera:
    K: np.ndarray            # (3, 3) pixels
    world_to_cam: np.ndarray # (4, 4) OpenCV axes
    size: tuple[int, int]    # width, height


def random_camera(rng: np.random.Generator, target: np.ndarray, extent: float) -> Camera:
    """A static camera framing the landmarks at 40-95 % of the image height (farther for clips that
    travel), 0.4-2.2 m high, any azimuth, looking at ``target`` (the clip's mean pelvis) with a little
    aim error; 40-75 deg vertical FOV."""
    size = (1280, 720) if rng.random() < 0.7 else (720, 1280)
    fov = np.radians(rng.uniform(40, 75))
    f = 0.5 * size[1] / np.tan(fov / 2)
    K = np.array([[f, 0, size[0] / 2], [0, f, size[1] / 2], [0, 0, 1.0]])
    dist = max(f * 1.55 / (rng.uniform(0.4, 0.95) * size[1]) + 0.15 * extent, 1.5)  # 1.55 m: nose to heel
    az = rng.uniform(0, 2 * np.pi)
    eye = target + np.array([dist * np.cos(az), dist * np.sin(az), 0.0])
    eye[2] = rng.uniform(0.4, 2.2)
    look = target + rng.normal(0, 0.15, 3)
    fwd = look - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    roll = rng.normal(0, np.radians(2))
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    R = np.stack([right, down, fwd])              # world -> camera rows
    E = np.eye(4)
    E[:3, :3] = R
    E[:3, 3] = -R @ eye
    return Camera(K, E, size)


def synthesize(joints: np.ndarray, world_rot: np.ndarray, rng: np.random.Generator, *,
               camera: Camera | None = None, noise_2d_px: float = 3.0, noise_world: float = 0.025,
               dropout: float = 0.03, occluder_prob: float = 0.3, miss_prob: float = 0.01,
               landmark_offset: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Noisy BlazePose-like landmarks for one clip; returns image/world/visibility + the camera.

    ``landmark_offset`` (33, 3): see ``landmarks_from_joints``."""
    T = joints.shape[0]
    P = landmarks_from_joints(joints, world_rot, landmark_offset)                                    # (T, 33, 3)
    if camera is None:
        pel = joints[:, 0]
        extent = float(np.linalg.norm(pel.max(0) - pel.min(0)))
        camera = random_camera(rng, pel.mean(0), extent)
    R, tr = camera.world_to_cam[:3, :3], camera.world_to_cam[:3, 3]
    Pc = P @ R.T + tr                                                               # (T, 33, 3)
    W, H = camera.size
    z = np.maximum(Pc[..., 2], 0.05)
    uv = (Pc[..., :2] / z[..., None]) * camera.K[[0, 1], [0, 1]] + camera.K[:2, 2]  # (T, 33, 2) px

    hip_c = 0.5 * (Pc[:, 23] + Pc[:, 24])                                           # (T, 3)
    vis = np.full((T, NUM_LANDMARKS), 0.995)
    # self-occlusion: of each left/right pair, the one farther from the camera by > 8 cm
    for a, b in LEFT_RIGHT:
        d = Pc[:, a, 2] - Pc[:, b, 2]
        vis[:, a] = np.where(d > 0.08, rng.uniform(0.3, 0.8, T), vis[:, a])
        vis[:, b] = np.where(d < -0.08, rng.uniform(0.3, 0.8, T), vis[:, b])
    occluded = np.zeros((T, NUM_LANDMARKS), bool)
    # truncation by the image border, and behind the camera
    occluded |= (uv[..., 0] < 0) | (uv[..., 0] >= W) | (uv[..., 1] < 0) | (uv[..., 1] >= H) | (Pc[..., 2] < 0.1)
    # DPMesh-style synthetic occluders: a rectangle over part of the body for a stretch of frames
    if rng.random() < occluder_prob and T > 1:
        t0 = rng.integers(0, T)
        t1 = min(T, t0 + rng.integers(10, 120))
        lo, hi = uv[t0:t1].reshape(-1, 2).min(0), uv[t0:t1].reshape(-1, 2).max(0)
        c = lo + rng.random(2) * (hi - lo)
        half = rng.uniform(0.15, 0.45) * (hi - lo)
        occluded[t0:t1] |= np.all(np.abs(uv[t0:t1] - c) < half, axis=-1)
    occluded |= rng.random((T, NUM_LANDMARKS)) < dropout
    vis = np.where(occluded, rng.uniform(0.0, 0.4, (T, NUM_LANDMARKS)), vis)

    # noise: a per-clip bias per landmark, per-frame Gaussian noise, more when occluded
    bbox = np.linalg.norm(uv.max(1) - uv.min(1), axis=-1)[:, None, None]            # (T, 1, 1) px
    scale2d = noise_2d_px * np.maximum(bbox / 400.0, 0.3)
    occ_mult = np.where(occluded, 6.0, 1.0)[..., None]
    uv_n = uv + rng.normal(0, 1, (1, NUM_LANDMARKS, 2)) * scale2d * 0.5 \
        + rng.normal(0, 1, uv.shape) * scale2d * occ_mult
    world = Pc - hip_c[:, None]
    world_n = world + rng.normal(0, noise_world * 0.5, (1, NUM_LANDMARKS, 3)) \
        + rng.normal(0, 1, world.shape) * noise_world * np.array([1.0, 1.0, 2.0]) * occ_mult
    image = np.empty((T, NUM_LANDMARKS, 3))
    image[..., 0] = uv_n[..., 0] / W
    image[..., 1] = uv_n[..., 1] / H
    image[..., 2] = (Pc[..., 2] - hip_c[:, None, 2]) * camera.K[0, 0] / (z.mean(1, keepdims=True) * W)
    missed = rng.random(T) < miss_prob
    image[missed] = np.nan
    world_n[missed] = np.nan
    vis[missed] = 0.0
    return {"image": image.astype(np.float32), "world": world_n.astype(np.float32),
            "visibility": vis.astype(np.float32), "detected": ~missed, "K": camera.K,
            "world_to_cam": camera.world_to_cam, "image_size": np.array(camera.size)}
