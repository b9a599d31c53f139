"""The scene description of one synthetic clip, and a seeded random sampler (no bpy).

A spec is plain data (dataclasses of floats, strings and tuples): ``asdict(spec)`` is stored as JSON in
the ground truth, so a clip can be re-rendered from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .cameras import look_at

STUDIO_LIGHTS = ("Default", "basic.sl", "outdoor.sl", "rim.sl", "studio.sl", "paint.sl")


@dataclass
class Occluder:
    kind: str                          # "box" | "pillar" (a cylinder)
    center: tuple[float, float, float]  # world metres (z = half height for objects on the floor)
    size: tuple[float, float, float]   # full extents x, y, z (pillar: diameter, diameter, height)
    rot_z_deg: float = 0.0
    rgb: tuple[float, float, float] = (0.5, 0.4, 0.3)


@dataclass
class CameraSpec:
    kind: str = "static"               # "static" | "pan" (follows the pelvis) | "dolly" | "handheld"
    focal_mm: float = 35.0
    sensor_width_mm: float = 36.0
    distance_m: float = 5.0            # from the body's mean pelvis position (horizontal)
    height_m: float = 1.3
    azimuth_deg: float = 0.0           # 0: camera in front of a body facing -Y (camera at -Y)
    target_height_m: float = 0.95
    shake_m: float = 0.0               # handheld: position jitter amplitude
    shake_deg: float = 0.0             # handheld: rotation jitter amplitude
    roll_deg: float = 0.0


@dataclass
class SceneSpec:
    width: int = 640
    height: int = 360
    fps: float = 30.0
    engine: str = "WORKBENCH"          # "WORKBENCH" | "CYCLES"
    cycles_samples: int = 16
    seed: int = 0
    group: str = "static"              # "static" | "moving" | "occluded" (dev set groups)
    skin_rgb: tuple[float, float, float] = (0.80, 0.57, 0.45)
    top_rgb: tuple[float, float, float] = (0.15, 0.25, 0.55)
    bottom_rgb: tuple[float, float, float] = (0.12, 0.12, 0.14)
    floor_kind: str = "checker"        # "checker" | "tiles" | "noise"
    floor_rgb_a: tuple[float, float, float] = (0.55, 0.55, 0.52)
    floor_rgb_b: tuple[float, float, float] = (0.35, 0.35, 0.33)
    floor_tile_m: float = 0.6
    background: str = "walls"          # "walls" (textured backdrop boxes around the scene) | "world"
    world_rgb: tuple[float, float, float] = (0.6, 0.68, 0.78)
    wall_rgb: tuple[float, float, float] = (0.7, 0.68, 0.62)
    wall_distance_m: float = 9.0
    studio_light: str = "Default"
    light_rotate_deg: float = 0.0
    shadows: bool = True
    shadow_intensity: float = 0.5
    light_direction: tuple[float, float, float] = (0.4, -0.3, 0.85)
    camera: CameraSpec = field(default_factory=CameraSpec)
    occluders: list[Occluder] = field(default_factory=list)


def spec_from_json(text: str) -> SceneSpec:
    """Inverse of ``json.dumps(dataclasses.asdict(spec))`` (the ground truth's ``spec_json``)."""
    import json

    d = json.loads(text)
    d["camera"] = CameraSpec(**d["camera"])
    d["occluders"] = [Occluder(**{k: tuple(v) if isinstance(v, list) else v for k, v in o.items()})
                      for o in d["occluders"]]
    return SceneSpec(**{k: tuple(v) if isinstance(v, list) and k != "occluders" else v for k, v in d.items()})


def camera_track(cam: CameraSpec, pelvis: np.ndarray, fps: float, seed: int = 0) -> np.ndarray:
    """(T, 4, 4) Blender camera matrix_world per frame, from the spec and the pelvis trajectory (T, 3)."""
    T = pelvis.shape[0]
    centre = pelvis[:, :2].mean(0)
    az = math.radians(cam.azimuth_deg)
    offset = np.array([math.sin(az), -math.cos(az)]) * cam.distance_m   # azimuth 0 -> camera at -Y
    eye0 = np.array([*(centre + offset), cam.height_m])
    target_static = np.array([*centre, cam.target_height_m])
    rng = np.random.default_rng(seed)
    mats = np.zeros((T, 4, 4))
    roll = math.radians(cam.roll_deg)
    if cam.kind == "static":
        mats[:] = look_at(eye0, target_static, roll)
        return mats
    # Targets follow the pelvis, smoothed (a camera operator lags a little).
    k = max(1, int(fps * 0.3))
    kernel = np.ones(k) / k
    pad = np.pad(pelvis[:, :2], ((k, k), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(pad[:, i], kernel, mode="same")[k:-k] for i in range(2)], 1)
    targets = np.concatenate([smooth, np.full((T, 1), cam.target_height_m)], 1)
    eyes = np.tile(eye0, (T, 1))
    if cam.kind == "dolly":               # the camera translates alongside the person
        eyes[:, :2] = smooth + offset
    if cam.kind == "handheld":
        t = np.arange(T) / fps
        f = rng.uniform(0.5, 1.5, size=(3, 2))
        p = rng.uniform(0, 2 * np.pi, size=(3, 2))
        jitter = sum(np.sin(2 * np.pi * f[:, i][None] * t[:, None] + p[:, i][None]) for i in range(2)) / 2
        eyes = eyes + cam.shake_m * jitter
        targets = targets + cam.shake_m * np.roll(jitter, 1, axis=1)
    for i in range(T):
        r = roll
        if cam.kind == "handheld":
            r += math.radians(cam.shake_deg) * math.sin(2 * math.pi * 0.7 * i / fps + seed)
        mats[i] = look_at(eyes[i], targets[i] if cam.kind != "static" else target_static, r)
    return mats


def _rgb(rng, lo=0.0, hi=1.0) -> tuple[float, float, float]:
    return tuple(float(x) for x in rng.uniform(lo, hi, 3))


SKIN_TONES = ((0.87, 0.68, 0.56), (0.80, 0.57, 0.45), (0.65, 0.45, 0.33), (0.48, 0.32, 0.22),
              (0.33, 0.22, 0.15), (0.93, 0.76, 0.65))


def sample_spec(rng: np.random.Generator, group: str, pelvis: np.ndarray, *, width: int = 640,
                height: int = 360, fps: float = 30.0, seed: int = 0) -> SceneSpec:
    """A random scene for a dev-set group. ``pelvis`` (T, 3) places camera and occluders."""
    assert group in ("static", "moving", "occluded"), f"group must be static|moving|occluded, got {group!r}"
    focal = float(rng.choice([24.0, 28.0, 35.0, 50.0]))
    # Distance so that the ~1.8 m of a standing person plus the walked path fits in the frame.
    extent = float(np.ptp(pelvis[:, :2], axis=0).max()) if len(pelvis) > 1 else 0.0
    vfov_h = 36.0 * height / width / (2 * focal)                  # tan(half vertical fov)
    dist = max(2.2 / (2 * vfov_h) * 1.15, (extent + 1.2) / (2 * 36.0 / (2 * focal)) * 1.1)
    kind = "static" if group != "moving" else str(rng.choice(["pan", "dolly", "handheld"]))
    if kind != "static":
        dist = max(2.2 / (2 * vfov_h) * 1.2, 3.0)
    cam = CameraSpec(kind=kind, focal_mm=focal, distance_m=float(dist * rng.uniform(1.0, 1.25)),
                     height_m=float(rng.uniform(0.6, 2.4)), azimuth_deg=float(rng.uniform(-180, 180)),
                     target_height_m=float(rng.uniform(0.8, 1.1)),
                     shake_m=0.03 if kind == "handheld" else 0.0, shake_deg=1.0 if kind == "handheld" else 0.0,
                     roll_deg=float(rng.normal(0, 1.5)))
    spec = SceneSpec(
        width=width, height=height, fps=fps, seed=seed, group=group,
        skin_rgb=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
        top_rgb=_rgb(rng, 0.05, 0.9), bottom_rgb=_rgb(rng, 0.05, 0.6),
        floor_kind=str(rng.choice(["checker", "tiles", "noise"])),
        floor_rgb_a=_rgb(rng, 0.3, 0.8), floor_rgb_b=_rgb(rng, 0.1, 0.5),
        floor_tile_m=float(rng.uniform(0.3, 1.2)),
        background=str(rng.choice(["walls", "walls", "world"])),
        world_rgb=_rgb(rng, 0.2, 0.9), wall_rgb=_rgb(rng, 0.3, 0.9),
        wall_distance_m=float(max(cam.distance_m + 3.0, rng.uniform(7.0, 12.0))),
        studio_light=str(rng.choice(STUDIO_LIGHTS)), light_rotate_deg=float(rng.uniform(-180, 180)),
        shadows=bool(rng.random() < 0.7), shadow_intensity=float(rng.uniform(0.3, 0.8)),
        light_direction=tuple(float(x) for x in (rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), 0.8)),
        camera=cam,
    )
    if group == "occluded":
        spec.occluders = _sample_occluders(rng, cam, pelvis)
    return spec


def _sample_occluders(rng: np.random.Generator, cam: CameraSpec, pelvis: np.ndarray) -> list[Occluder]:
    """1-2 objects on the line of sight from the (static) camera to the pelvis at a random frame, so
    that they hide part of the body for part of the clip (all of it when the person stays put)."""
    centre = pelvis[:, :2].mean(0)
    az = math.radians(cam.azimuth_deg)
    eye = centre + np.array([math.sin(az), -math.cos(az)]) * cam.distance_m
    out: list[Occluder] = []
    want, tries = int(rng.integers(1, 3)), 0
    while len(out) < want and tries < 30:
        tries += 1
        p = pelvis[int(rng.integers(len(pelvis))), :2]
        ray = p - eye
        dist = float(np.linalg.norm(ray))
        ray /= dist
        side = np.array([-ray[1], ray[0]])
        # between 0.6 m from the person and 1.5 m from the camera, slightly off the ray
        along = rng.uniform(0.6, max(0.7, dist - 1.5))
        c = p - ray * along + side * rng.normal(0.0, 0.2)
        kind = str(rng.choice(["box", "pillar", "table"]))
        rgb = _rgb(rng, 0.1, 0.9)
        rz = float(np.degrees(math.atan2(side[1], side[0])) + rng.normal(0, 15))
        if kind == "pillar":
            d, h = rng.uniform(0.25, 0.5), rng.uniform(2.2, 3.0)
            size = (d, d, h)
        elif kind == "table":                               # a counter hiding the legs
            size = (rng.uniform(1.0, 2.0), rng.uniform(0.5, 0.9), rng.uniform(0.7, 1.0))
        else:
            size = (rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9), rng.uniform(0.8, 1.6))
        # the person must not walk through it
        if np.linalg.norm(pelvis[:, :2] - c, axis=1).min() < 0.5 * math.hypot(size[0], size[1]) + 0.35:
            continue
        out.append(Occluder("pillar" if kind == "pillar" else "box", (float(c[0]), float(c[1]), float(size[2] / 2)),
                            tuple(float(x) for x in size), 0.0 if kind == "pillar" else rz, rgb))
    return out
