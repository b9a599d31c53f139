"""The scene description of one synthetic clip, and a seeded random sampler (no bpy).

A spec is plain data (dataclasses of floats, strings and tuples): ``asdict(spec)`` is stored as JSON in
the ground truth, so a clip can be re-rendered from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .cameras import intrinsics, look_at, project, world_to_opencv

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


def sample_spec(rng: np.random.Generator, group: str, joints: np.ndarray, *, width: int = 640,
                height: int = 360, fps: float = 30.0, seed: int = 0) -> SceneSpec:
    """A random scene for a dev-set group. ``joints`` (T, 24, 3) (vm24, world; joint 0 the pelvis)
    place the camera and the occluders."""
    assert group in ("static", "moving", "occluded"), f"group must be static|moving|occluded, got {group!r}"
    assert joints.ndim == 3 and joints.shape[2] == 3, f"joints must be (T, J, 3), got {joints.shape}"
    pelvis = joints[:, 0]
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
    if kind == "static":
        _frame_whole_body(spec, joints)
    if group == "occluded":
        spec.occluders = _sample_occluders(rng, cam, joints, fps)
    return spec


FRAMED_MIN = 0.95          # static cameras: every joint in view in at least this fraction of frames


def in_view_flags(spec: SceneSpec, joints: np.ndarray) -> np.ndarray:
    """(T, J) bool: the joints project inside the image, in front of the camera (as ``in_view`` in the GT)."""
    cams = camera_track(spec.camera, joints[:, 0], spec.fps, spec.seed)
    K = intrinsics(spec.camera.focal_mm, spec.camera.sensor_width_mm, spec.width, spec.height)
    uv, z = project(joints, K, world_to_opencv(cams))
    return (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < spec.width) & (uv[..., 1] >= 0) & (uv[..., 1] < spec.height)


def _frame_whole_body(spec: SceneSpec, joints: np.ndarray, tries: int = 8) -> None:
    """Static camera: step back (x1.1, a few times at most) until the whole body is in view in
    FRAMED_MIN of the frames; joints are bone heads, so keep a margin for the head top and the feet."""
    low = joints.copy()
    low[..., 2] = np.maximum(low[..., 2] - 0.15, 0.0)      # soles (not below the floor)
    high = joints.copy()
    high[..., 2] += 0.15                                    # top of the head
    pad = np.concatenate([low, high], axis=1)
    for _ in range(tries):
        if in_view_flags(spec, pad).all(1).mean() >= FRAMED_MIN:
            return
        spec.camera.distance_m = float(spec.camera.distance_m * 1.1)
        spec.wall_distance_m = float(max(spec.wall_distance_m, spec.camera.distance_m + 3.0))


# Occluded group: the occluders must hide part of the body for part of the clip (issue: "hide limbs
# for part of the clip"), so a placement is kept only when, by ray casts from the camera to the joints,
# OCCLUDED_FRACTION[0] <= occluded joint-frames <= OCCLUDED_FRACTION[1] and the torso (TORSO_JOINTS)
# is free of occluders in at least TORSO_VISIBLE_MIN of the frames.
OCCLUDED_FRACTION = (0.15, 0.50)
TORSO_VISIBLE_MIN = 0.60
TORSO_JOINTS = (0, 3, 6, 9)            # pelvis, spine1, spine2, spine3 (engine.skeleton.JOINT_NAMES)
OCCLUDER_TRIES = 200


def _segment_hits_occluder(eye: np.ndarray, pts: np.ndarray, o: Occluder) -> np.ndarray:
    """(...,) bool: the segment ``eye`` (3,) -> ``pts`` (..., 3) passes through the occluder's volume.

    Pure numpy stand-in for the renderer's BVH ray cast (render.occlusion_flags): a box is an oriented
    box (rotation about Z), a pillar an upright cylinder (the mesh is its 24-sided prism).
    """
    c, half = np.asarray(o.center, float), np.asarray(o.size, float) / 2
    a = -math.radians(o.rot_z_deg)                  # world -> occluder frame: rotate by -rot_z about Z
    R = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    e = R @ (np.asarray(eye, float) - c)
    d = (np.asarray(pts, float) - c) @ R.T - e      # segment e + s d, s in [0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        if o.kind == "pillar":
            r = half[0]
            A = d[..., 0] ** 2 + d[..., 1] ** 2
            B = 2 * (e[0] * d[..., 0] + e[1] * d[..., 1])
            C = e[0] ** 2 + e[1] ** 2 - r * r
            disc = B * B - 4 * A * C
            sq = np.sqrt(np.maximum(disc, 0.0))
            lo = np.where(A > 1e-12, (-B - sq) / (2 * A), np.where(C <= 0, -np.inf, np.inf))
            hi = np.where(A > 1e-12, (-B + sq) / (2 * A), np.where(C <= 0, np.inf, -np.inf))
            lo = np.where(disc < 0, np.inf, lo)
            hi = np.where(disc < 0, -np.inf, hi)
            axes = (2,)
        else:
            lo = np.full(d.shape[:-1], -np.inf)
            hi = np.full(d.shape[:-1], np.inf)
            axes = (0, 1, 2)
        for k in axes:
            t1 = (-half[k] - e[k]) / d[..., k]
            t2 = (half[k] - e[k]) / d[..., k]
            inside = np.abs(e[k]) <= half[k]
            flat = np.abs(d[..., k]) < 1e-12        # parallel to the slab: all or nothing
            lo = np.where(flat, np.where(inside, lo, np.inf), np.maximum(lo, np.minimum(t1, t2)))
            hi = np.where(flat, np.where(inside, hi, -np.inf), np.minimum(hi, np.maximum(t1, t2)))
    return (lo <= hi) & (hi >= 0.0) & (lo <= 1.0)


def occluder_flags(eye: np.ndarray, joints: np.ndarray, occluders: list[Occluder]) -> np.ndarray:
    """(T, J) bool: the segment camera centre ``eye`` (3,) -> joint ``joints`` (T, J, 3) hits an occluder."""
    out = np.zeros(joints.shape[:-1], bool)
    for o in occluders:
        out |= _segment_hits_occluder(eye, joints, o)
    return out


def occlusion_stats(flags: np.ndarray) -> dict[str, float]:
    """Summary of (T, J) occluder flags: occluded joint-frames, frames with the torso free, frames with any."""
    return {"occluded_fraction": float(flags.mean()),
            "torso_visible_fraction": float((~flags[:, list(TORSO_JOINTS)].any(1)).mean()),
            "frames_with_occlusion": float(flags.any(1).mean())}


def occlusion_ok(flags: np.ndarray) -> bool:
    """The occluded-group rule (OCCLUDED_FRACTION, TORSO_VISIBLE_MIN) on (T, J) occluder flags."""
    s = occlusion_stats(flags)
    return (OCCLUDED_FRACTION[0] <= s["occluded_fraction"] <= OCCLUDED_FRACTION[1]
            and s["torso_visible_fraction"] >= TORSO_VISIBLE_MIN)


def _occlusion_badness(flags: np.ndarray) -> float:
    """0 when ``occlusion_ok``, else how far the placement is from the rule (to keep the best try)."""
    s = occlusion_stats(flags)
    lo, hi = OCCLUDED_FRACTION
    return (max(0.0, lo - s["occluded_fraction"]) + max(0.0, s["occluded_fraction"] - hi)
            + max(0.0, TORSO_VISIBLE_MIN - s["torso_visible_fraction"]))


def _inside_occluder(pts: np.ndarray, o: Occluder, margin: float) -> np.ndarray:
    """(...,) bool: the points are within ``margin`` of the occluder's volume (horizontally; any height below its top + margin)."""
    c, half = np.asarray(o.center, float), np.asarray(o.size, float) / 2
    a = -math.radians(o.rot_z_deg)
    q = pts[..., :2] - c[:2]
    x = math.cos(a) * q[..., 0] - math.sin(a) * q[..., 1]
    y = math.sin(a) * q[..., 0] + math.cos(a) * q[..., 1]
    low = pts[..., 2] <= 2 * half[2] + margin
    if o.kind == "pillar":
        return low & (np.hypot(x, y) <= half[0] + margin)
    return low & (np.abs(x) <= half[0] + margin) & (np.abs(y) <= half[1] + margin)


def _one_occluder(rng: np.random.Generator, eye: np.ndarray, joints: np.ndarray) -> Occluder | None:
    """A random box / pillar / counter between the camera and the person at a random frame."""
    pelvis = joints[:, 0]
    p = pelvis[int(rng.integers(len(pelvis))), :2]
    ray = p - eye[:2]
    dist = float(np.linalg.norm(ray))
    ray /= dist
    side = np.array([-ray[1], ray[0]])
    # between 0.6 m from the person and 1.5 m from the camera, off the ray by up to ~half a body width
    along = rng.uniform(0.6, max(0.7, dist - 1.5))
    c = p - ray * along + side * rng.normal(0.0, 0.35)
    kind = str(rng.choice(["box", "pillar", "table"]))
    rgb = _rgb(rng, 0.1, 0.9)
    rz = float(np.degrees(math.atan2(side[1], side[0])) + rng.normal(0, 15))
    if kind == "pillar":
        d, h = rng.uniform(0.2, 0.45), rng.uniform(2.2, 3.0)
        size = (d, d, h)
    elif kind == "table":                                   # a counter hiding the legs
        size = (rng.uniform(0.8, 2.0), rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.95))
    else:
        size = (rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9), rng.uniform(0.5, 1.4))
    o = Occluder("pillar" if kind == "pillar" else "box", (float(c[0]), float(c[1]), float(size[2] / 2)),
                 tuple(float(x) for x in size), 0.0 if kind == "pillar" else rz, rgb)
    # the person must not walk (or reach) through it, and the camera must not be inside it
    if _inside_occluder(joints, o, 0.15).any() or _inside_occluder(eye, o, 0.3):
        return None
    return o


def _sample_occluders(rng: np.random.Generator, cam: CameraSpec, joints: np.ndarray,
                      fps: float = 30.0) -> list[Occluder]:
    """1-2 objects on the line of sight from the static camera to the person, placed so that they hide
    part of the body for part of the clip (``occlusion_ok``: OCCLUDED_FRACTION of the joint-frames,
    torso free in TORSO_VISIBLE_MIN of the frames).

    Up to OCCLUDER_TRIES random placements (all from ``rng``, so deterministic), each checked with
    ``occluder_flags`` (the renderer's ray casts, in numpy); if none passes, the closest one is kept.
    """
    eye = camera_track(cam, joints[:, 0], fps)[0, :3, 3]
    best, best_bad = [], math.inf
    for _ in range(OCCLUDER_TRIES):
        want = int(rng.integers(1, 3))
        occs = [o for o in (_one_occluder(rng, eye, joints) for _ in range(want)) if o is not None]
        if not occs:
            continue
        bad = _occlusion_badness(occluder_flags(eye, joints, occs))
        if bad < best_bad:
            best, best_bad = occs, bad
        if bad == 0.0:
            break
    return best
