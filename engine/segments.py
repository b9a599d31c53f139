"""Shots and gaps between the stages: lost frames out of the track, one trajectory per shot, and a root
that never moves faster than a person can.

- ``invalidate``: frames the keypoints stage marked lost become frames without a detection (NaN
  landmarks, zero visibility), so every later stage fills them from the frames around them.
- ``trajectory_per_shot``: the trajectory stage runs on each shot (between cuts) on its own; each shot
  gets its own world frame (origin below its first pelvis, its own camera), so no path joins two shots.
- ``settle_on_floor``: each shot's world moved up or down (root and camera together) so that the
  skeleton's feet in contact rest on z = 0; applied by the pipeline before the refine stages.
- ``floor_lift``: no body more than 5 cm below the floor (z = 0): the root raised (smoothly) where it would
  be. Not applied by the pipeline: it made dev-set WA-MPJPE100 worse (docs/benchmarks.md).
- ``limit_speed``: within a shot the root's speed is capped (``MAX_SPEED``, 12 m/s: faster than a
  sprinter) by the mean of a forward and a backward clamped pass; a jump the clamp has to spread out
  is moved symmetrically around where it happened (the mean of two paths whose steps are below the cap
  has steps below the cap).
"""

from __future__ import annotations

import dataclasses

import numpy as np

MAX_SPEED = 12.0  # m/s
LOW_COVERAGE = 0.5  # share of frames with a detection below which the result is flagged as untrustworthy


def invalidate(track, lost: np.ndarray):
    """A copy of the LandmarkTrack with the ``lost`` frames turned into frames without a detection."""
    lost = np.asarray(lost, bool) & track.valid
    if not lost.any():
        return track
    image, world, vis = track.image.copy(), track.world.copy(), track.visibility.copy()
    image[lost] = np.nan
    world[lost] = np.nan
    vis[lost] = 0.0
    return dataclasses.replace(track, image=image, world=world, visibility=vis, valid=track.valid & ~lost)


def slice_track(track, sl: slice):
    return dataclasses.replace(track, image=track.image[sl], world=track.world[sl], visibility=track.visibility[sl],
                               valid=track.valid[sl], times=track.times[sl], frame_index=track.frame_index[sl])


def slice_motion(motion, sl: slice):
    """A BodyMotion restricted to frames ``sl`` (per-frame arrays sliced, the skeleton kept)."""
    return dataclasses.replace(motion, rotations=motion.rotations[sl], root=motion.root[sl],
                               joints=motion.joints[sl], joint_confidence=motion.joint_confidence[sl],
                               anchors=motion.anchors[sl], anchor_weights=motion.anchor_weights[sl])


def shot_slices(shot: np.ndarray) -> list[slice]:
    edges = np.flatnonzero(np.diff(shot)) + 1
    bounds = np.r_[0, edges, len(shot)]
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def trajectory_per_shot(stage, track, motion, clip, report, shot: np.ndarray):
    """Run the trajectory ``stage`` per shot and join the records (per-frame arrays concatenated).

    A shot without any detection takes the world of the nearest shot that has one, with the root held
    at that shot's nearest frame (it is all lost frames; the result says so)."""
    from .stages.records import Trajectory

    slices = shot_slices(shot)
    if len(slices) == 1:
        return stage(track, motion, clip, report)
    if clip is not None:   # a warning the stage gives for several shots is given once
        seen: set = set()

        def warn_once(code: str, message: str, _warn=clip.warn) -> None:
            if code not in seen:
                seen.add(code)
                _warn(code, message)

        clip = dataclasses.replace(clip, warn=warn_once)
    parts: list[Trajectory | None] = []
    for k, sl in enumerate(slices):
        sub = slice_track(track, sl)
        if not sub.valid.any():
            parts.append(None)
            continue
        parts.append(stage(sub, slice_motion(motion, sl), clip, lambda i, n, k=k: report(k * n + i, len(slices) * n)))
    good = [k for k, p in enumerate(parts) if p is not None]
    for k, sl in enumerate(slices):
        if parts[k] is None:
            near = min(good, key=lambda g: abs(g - k))
            src, n = parts[near], sl.stop - sl.start
            row = 0 if near > k else -1
            parts[k] = Trajectory(root_world=np.repeat(src.root_world[row:][:1], n, 0),
                                  root_orient_world=np.repeat(src.root_orient_world[row:][:1], n, 0),
                                  camera_extrinsics=np.repeat(src.camera_extrinsics[row:][:1], n, 0),
                                  camera_static=src.camera_static, info={"empty_shot": True},
                                  contacts=None if src.contacts is None else np.zeros((n, 4), bool))
    with_contacts = all(p.contacts is not None for p in parts)
    return Trajectory(root_world=np.concatenate([p.root_world for p in parts]),
                      root_orient_world=np.concatenate([p.root_orient_world for p in parts]),
                      camera_extrinsics=np.concatenate([p.camera_extrinsics for p in parts]),
                      camera_static=all(p.camera_static for p in parts),
                      info={**parts[good[0]].info, "shots": [p.info for p in parts]},
                      contacts=np.concatenate([p.contacts for p in parts]) if with_contacts else None)


def clamp_path(x: np.ndarray, step: float) -> np.ndarray:
    """Forward pass: each step shortened to at most ``step`` (T, D)."""
    out = np.array(x, np.float64)
    for t in range(1, len(out)):
        d = out[t] - out[t - 1]
        n = float(np.linalg.norm(d))
        if n > step:
            out[t] = out[t - 1] + d * (step / n)
    return out


def limit_speed(root: np.ndarray, fps: float, shot: np.ndarray | None = None,
                max_speed: float = MAX_SPEED) -> tuple[np.ndarray, int]:
    """(T, 3) root path with every step below ``max_speed / fps`` within each shot; also the number of
    frames moved (by more than 1 mm)."""
    root = np.asarray(root, np.float64)
    shot = np.zeros(len(root), np.int32) if shot is None else np.asarray(shot)
    step = max_speed / fps
    out = root.copy()
    for sl in shot_slices(shot) if len(root) else []:
        x = root[sl]
        if len(x) < 2 or np.linalg.norm(np.diff(x, axis=0), axis=-1).max() <= step:
            continue
        fwd = clamp_path(x, step)
        bwd = clamp_path(x[::-1], step)[::-1]
        out[sl] = 0.5 * (fwd + bwd)
    moved = int((np.linalg.norm(out - root, axis=-1) > 1e-3).sum())
    return out, moved


def root_speed(root: np.ndarray, fps: float, shot: np.ndarray | None = None) -> np.ndarray:
    """(T-1,) speed of each step in m/s; steps across a cut are 0."""
    v = np.linalg.norm(np.diff(np.asarray(root, np.float64), axis=0), axis=-1) * fps
    if shot is not None:
        v[np.diff(np.asarray(shot)) != 0] = 0.0
    return v


def prepare(track, extras: dict, fps: float, warn) -> tuple[object, dict]:
    """After the keypoints: drop the frames the tracker lost and the frames of cross-fades, find the
    shots, and warn about each (frame numbers are the source video's). Returns the track and a dict with
    ``shot`` (T,), ``cuts`` (output frame of each new shot), ``fades``, ``lost`` (T,) and, from a
    tracking keypoints stage, ``person_box`` (T, 4)."""
    from . import cuts as ct
    from . import tracking as tk

    T = len(track)
    out: dict = {"lost": np.zeros(T, bool)}
    rec = extras.get("tracking")
    if rec is not None and len(rec["lost"]) == T:
        out["lost"] = np.asarray(rec["lost"], bool).copy()
        out["person_box"] = np.asarray(rec["boxes"], np.float32)
        out["identity_jumps"] = [e for e in rec["events"] if e["kind"] == "identity_jump"]
        for e in rec["events"]:
            if e["kind"] == "person_switch":
                warn("person_switch", f"Frame {int(track.frame_index[e['frame']])}: {e['why']}; the frames before "
                                      "it are marked as lost.")
    sigs = extras.get("signatures") or []
    cut_list, fades = ct.find_cuts(sigs, fps) if len(sigs) == T else ([], [])
    for a, b in fades:
        out["lost"][a:b + 1] = True
    out.update(cuts=cut_list, fades=fades, shot=ct.segment_ids(T, cut_list))
    if cut_list:
        where = ", ".join(str(int(track.frame_index[c])) for c in cut_list[:10])
        fade_txt = f" ({len(fades)} of them cross-fades, whose frames are marked as lost)" if fades else ""
        warn("shot_cuts", f"The video has {len(cut_list)} cut(s){fade_txt}: new shots start at frames {where}; "
                          "each shot is solved on its own and its path starts anew.")
    lost = out["lost"] & track.valid
    track = invalidate(track, lost)
    rs = tk.ranges(out["lost"])
    share = float(track.valid.mean()) if T else 0.0
    if T >= 10 and share < LOW_COVERAGE:
        warn("low_coverage", f"The person was found in only {share:.0%} of the frames: most of the motion is "
                             "guessed; do not trust it (try --person, or a clip where the person is bigger).")
    if rs and rec is not None:
        n = int(sum(b - a + 1 for a, b in rs))
        warn("person_lost", f"The selected person was not found (or someone else was rejected) in {n} of {T} "
                            f"frames: {tk.describe_ranges(rs, track.frame_index)}. Those frames are filled "
                            "from the motion around them; check them.")
    return track, out


def result_fields(shots: dict, T: int, image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The optional result fields (docs/result_format.md): ``shot``, ``cuts``, ``lost``, ``person_box``
    (the tracker's normalised boxes in pixels of ``image_size``)."""
    out = {"shot": np.asarray(shots["shot"], np.int32), "cuts": np.asarray(shots["cuts"], np.int32).reshape(-1),
           "lost": np.asarray(shots["lost"], bool)}
    if "person_box" in shots:
        W, H = image_size
        out["person_box"] = (np.asarray(shots["person_box"], np.float64).reshape(T, 4) * (W, H, W, H)).astype(np.float32)
    return out


def floor_lift(motion, traj, tol: float = 0.03, slack: float = 0.02) -> tuple[np.ndarray, float]:
    """(T, 3) root path raised where the body would sink more than ``tol`` below the floor (z = 0): the
    foot points (engine.contacts: ankles and balls, at their flat-foot heights) and every other joint.
    The lift is smoothed over a few frames (a per-frame lift passes the depth noise of the feet on to
    the root: +15 % jitter on the dev set); where the smooth lift falls short by more than ``slack``, the
    rest is added in that frame, so nothing sinks more than ``tol + slack``. Also the largest lift (m)."""
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d

    from . import contacts as ct
    from . import skeleton as sk

    rotations = np.array(motion.rotations, np.float64)
    rotations[:, 0] = traj.root_orient_world
    root = np.asarray(traj.root_world, np.float64)
    rest = np.asarray(motion.rest_offsets, np.float64)
    _, joints = sk.forward_kinematics(rotations, root, rest)
    joints = np.asarray(joints, np.float64)
    idx = [sk.INDEX[n] for n in sk.CONTACT_JOINTS]
    feet = joints[:, idx, 2] - ct.sole_heights(rest)[None]            # (T, C) height above the flat foot
    low = np.minimum(feet.min(1), joints[..., 2].min(1))              # (T,)
    need = np.maximum(0.0, -low - tol)
    if not need.any():
        return root, 0.0
    lift = gaussian_filter1d(maximum_filter1d(need, 5, mode="nearest"), 2.0, mode="nearest")
    lift += np.maximum(0.0, need - lift - slack)
    out = root.copy()
    out[:, 2] += lift
    return out, float(lift.max())


def _world_joints(motion, traj) -> np.ndarray:
    """(T, J, 3) world joints: the body's local rotations under the trajectory's root."""
    from . import skeleton as sk

    rotations = np.array(motion.rotations, np.float64)
    rotations[:, 0] = traj.root_orient_world
    _, joints = sk.forward_kinematics(rotations, np.asarray(traj.root_world, np.float64),
                                      np.asarray(motion.rest_offsets, np.float64))
    return np.asarray(joints, np.float64)


def settle_on_floor(motion, traj, fps: float, shot: np.ndarray | None = None, *,
                    max_shift: float = 0.3) -> tuple[object, list[float]]:
    """The world of each shot moved up or down so that the skeleton's feet in contact rest on z = 0.

    The floor of the trajectory stage is where its foot *anchors* rest; the result's contacts are the
    skeleton's foot points at their flat-foot heights (engine.contacts). Per shot, the still foot points
    (slower than ``contacts.SPEED``; a shot with too few such frames is left) give each frame's lowest one, and the lowest
    level they consistently rest on (``trajectory.lowest_level``) is taken to z = 0: a change of the
    world frame (root and camera move together, so the image fit is unchanged; a constant per shot, so
    no jitter is added). A shot whose floor came from the pelvis (``ground_source``), or whose shift would
    exceed ``max_shift``, is left as it is. Returns the trajectory and the shift of each shot (m, 0 for
    those left)."""
    from . import contacts as ct
    from . import skeleton as sk
    from .trajectory import lowest_level

    shot = np.zeros(len(traj.root_world), np.int32) if shot is None else np.asarray(shot)
    infos = traj.info.get("shots", [traj.info])
    joints = _world_joints(motion, traj)
    idx = [sk.INDEX[n] for n in sk.CONTACT_JOINTS]
    feet = joints[:, idx]                                                     # (T, C, 3)
    above = feet[..., 2] - ct.sole_heights(np.asarray(motion.rest_offsets, np.float64))[None]
    root = np.array(traj.root_world, np.float64)
    E = np.array(traj.camera_extrinsics, np.float64)
    shifts: list[float] = []
    for k, sl in enumerate(shot_slices(shot)):
        info = infos[k] if k < len(infos) else {}
        if info.get("ground_source", "feet") != "feet" or info.get("empty_shot") or sl.stop - sl.start < 4:
            shifts.append(0.0)
            continue
        speed = np.linalg.norm(np.gradient(feet[sl], axis=0), axis=-1) * fps        # (n, C)
        still = speed < ct.SPEED
        if still.any(1).sum() < max(8, 0.1 * (sl.stop - sl.start)):
            shifts.append(0.0)   # feet hardly ever still (a jumping dancer): nothing to settle them on
            continue
        h = np.where(still, above[sl], np.inf).min(1)
        h = h[np.isfinite(h)]
        if len(h) == 0:
            shifts.append(0.0)
            continue
        d = lowest_level(h)
        if abs(d) > max_shift:
            shifts.append(0.0)
            continue
        root[sl, 2] -= d
        E[sl, :3, 3] += d * E[sl, :3, 2]      # p_cam = R (p' + d z) + t: the camera moves with the world
        shifts.append(float(d))
    out = dataclasses.replace(traj, root_world=root.astype(np.asarray(traj.root_world).dtype),
                              camera_extrinsics=E.astype(np.asarray(traj.camera_extrinsics).dtype))
    return out, shifts
