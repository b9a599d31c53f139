"""The engine's pipeline: decode -> keypoints -> body -> trajectory -> [refine...] -> result file.

This module only wires stages (engine/stages: each a registered implementation with a frozen config)
and reports progress through :class:`engine.protocol.Protocol`; it raises
:class:`engine.errors.EngineError` for anything the user must fix.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from . import __version__, options
from .errors import EngineError
from .protocol import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What to read and what to write."""

    video: str
    out: str
    start_frame: int | None = None   # first source frame (0-based)
    end_frame: int | None = None     # source frame to stop BEFORE (exclusive)
    fps: float | None = None         # output rate (subsample); None = every frame
    max_side: int = 1280             # processing resolution cap


@dataclass(frozen=True)
class CameraHints:
    """What the user knows about the camera."""

    mode: str = "auto"               # auto | static | moving
    focal: float | None = None       # pixels, of the displayed frame
    fov: float | None = None         # horizontal field of view, degrees (used when focal is None)


@dataclass(frozen=True)
class StageChoice:
    """One stage: the registered implementation's name and overrides of its config's defaults."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOptions:
    job: Job
    camera: CameraHints = CameraHints()
    device: str = "auto"             # auto | cpu | cuda
    keypoints: StageChoice = StageChoice("blazepose")
    body: StageChoice = StageChoice("rope")
    trajectory: StageChoice = StageChoice("tp")
    refine: tuple[StageChoice, ...] = (StageChoice("footlock"),)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise EngineError("device_unavailable", "CUDA was requested but no CUDA device is available; "
                                                "use --device cpu or auto.")
    if name not in ("cpu", "cuda"):
        raise EngineError("usage", f"Unknown device {name!r}: use auto, cpu or cuda.")
    return name


def check_output(out: str, video: str | None = None) -> Path:
    """See :func:`engine.options.check_output` (kept here for callers of the old name)."""
    return options.check_output(out, video)


def focal_length(hints: CameraHints, width: int, height: int) -> float:
    from . import trajectory

    if hints.focal:
        return float(hints.focal)
    if hints.fov:
        return trajectory.focal_from_fov(hints.fov, width, height)
    return trajectory.default_focal(width, height)


def output_fps(requested: float | None, source: float | None, times: np.ndarray) -> float:
    """The rate of the frames actually emitted: never above the source's (a higher --fps keeps every frame)."""
    if requested and source:
        return float(min(requested, source))
    if requested or source:
        return float(requested or source)
    return float(1.0 / np.median(np.diff(times))) if len(times) > 1 else 30.0


def stage_report(proto: Protocol, stage: str) -> Callable[[int, int], None]:
    return lambda i, n: proto.progress(stage, i, n)


def build_stage(kind: str, choice: StageChoice, device: str):
    from . import stages

    return stages.build(kind, choice.name, device, choice.options)


def reconstruct(track, info, opts: RunOptions, proto: Protocol, warn, *, device: str = "cpu",
                camera_moving: bool | None = None, camera_tracker=None, timings: dict | None = None,
                shot: np.ndarray | None = None) -> tuple[dict, dict]:
    """Landmark track -> result arrays (all fields but ``meta_json``) and metadata: the stages after the
    keypoints (separate so that tools can rerun them on cached landmarks). ``shot`` (T,) numbers the
    shots between cuts: the trajectory runs per shot, and the root's speed is capped within each."""
    from . import segments
    from .result import assemble
    from .stages.records import Clip

    timings = {} if timings is None else timings
    W, H = info.display_width, info.display_height
    tracks = camera_tracker if camera_tracker is not None and len(camera_tracker.matches) == len(track) else None
    clip = Clip(fps=output_fps(opts.job.fps, info.fps, track.times), width=W, height=H,
                focal_px=focal_length(opts.camera, W, H), camera=opts.camera.mode, camera_moving=camera_moving,
                warn=warn, camera_tracks=tracks)
    t0 = time.perf_counter()
    motion = build_stage("body", opts.body, device)(track, clip, stage_report(proto, "solve"))
    timings["solve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    proto.progress("trajectory", 0, 3, force=True)
    traj_total = [3]   # the trajectory stage's own step count, for the last progress message

    def traj_report(i: int, n: int) -> None:
        traj_total[0] = n
        proto.progress("trajectory", i, n)

    traj = segments.trajectory_per_shot(build_stage("trajectory", opts.trajectory, device), track, motion, clip,
                                        traj_report, np.zeros(len(track), np.int32)
                                        if shot is None else shot)
    # the feet in contact onto z = 0 (per shot; the world frame moves, the camera with it)
    traj, shifts = segments.settle_on_floor(motion, traj, clip.fps, shot)
    traj.info["floor_shift_m"] = [round(d, 4) for d in shifts]
    for choice in opts.refine:
        motion, traj = build_stage("refine", choice, device)(motion, traj, clip, stage_report(proto, "refine"))
    suspect = [i["ground_suspect"] for i in traj.info.get("shots", [traj.info]) if i.get("ground_suspect")]
    if suspect:
        warn("floor_uncertain", f"The floor found under the feet was implausible ({suspect[0]}); it was put one "
                                "leg length below the pelvis instead.")
    # segments.floor_lift (no body more than 5 cm below the floor) is not applied: on the dev set it made
    # WA-MPJPE100 worse (241.1 vs 238.1 mm without it, after settle_on_floor; docs/benchmarks.md)
    traj.root_world, moved = segments.limit_speed(traj.root_world, clip.fps, shot)
    if moved:
        warn("root_speed_limited", f"The body's path moved faster than {segments.MAX_SPEED:g} m/s around "
                                   f"{moved} frames; it was slowed there (usually a misdetection).")
    timings["trajectory"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = assemble(track, info, clip, motion, traj, video_path=opts.job.video, engine_version=__version__)
    proto.progress("trajectory", traj_total[0], traj_total[0])
    timings["body_mesh"] = time.perf_counter() - t0
    meta = {**motion.info, "world": traj.info, "focal_px": clip.focal_px}
    return data, meta


def _import_later_stages() -> None:
    """Import what the stages after the keypoints need (torch, roma, scipy: ~3 s on a small CPU) while
    the pose loop runs."""
    from . import solve, trajectory  # noqa: F401  (imported for their side effect: loading)
    from .body_mesh import anny_model
    from .geometry import rotations  # noqa: F401

    anny_model("cpu")  # the body mesh's model (~3 s to build from the bundled cache)


def detect(opts: RunOptions, info, proto: Protocol, warn, device: str, extras: dict | None = None):
    """Decode + keypoints over the clip (decoding runs in the reader's thread). Returns the landmark
    track, the camera-motion verdict (None if not measured or unknown), the camera tracker (None for a static
    camera) and the reader's processed size. ``extras`` (optional) receives ``signatures`` (engine.cuts,
    one per frame) and, from a keypoints stage that tracks a person, ``tracking`` (its
    ``tracking_record()``: boxes, lost flags, events)."""
    from . import cuts, video
    from .camera_motion import CameraMotionMeter, CameraTracker
    from .pose import LandmarkBuffer

    job = opts.job
    extras = {} if extras is None else extras
    reader = video.VideoReader(job.video, start_frame=job.start_frame, end_frame=job.end_frame,
                               fps=job.fps, max_side=job.max_side, on_warning=warn, info=info)
    buf = LandmarkBuffer()
    sigs: list = []
    meter = CameraMotionMeter() if opts.camera.mode == "auto" else None
    tracker = CameraTracker() if opts.camera.mode != "static" else None
    choice = opts.keypoints
    if isinstance(choice.options.get("person"), str) and info.display_width and info.display_height:
        from .tracking import scale_person  # a point is given in displayed pixels; frames come processed

        choice = StageChoice(choice.name, {**choice.options, "person": scale_person(
            choice.options["person"], reader.width / info.display_width, reader.height / info.display_height)})
    with build_stage("keypoints", choice, device) as keypoints, reader:
        proto.progress("pose", 0, reader.expected_frames, force=True)
        for fr in reader:
            det = keypoints(fr.image)
            buf.append(fr.time, fr.index, det)
            person = None if det is None else det.image[:, :2]
            sigs.append(cuts.signature(fr.image))
            grey = tracker.update(fr.image, person) if tracker is not None else None
            if meter is not None:
                meter.update(fr.image, person, grey=grey)   # the tracker's small grey frame, when there is one
            proto.progress("pose", len(buf), reader.expected_frames)
        record = getattr(keypoints, "tracking_record", None)
        if record is not None and extras is not None:
            extras["tracking"] = record()
    if extras is not None:
        extras["signatures"] = sigs
    # moving or not: the background tracks' verdict (the view's displacement); the optical-flow meter only
    # when too little background was tracked to tell
    moving = tracker.is_moving() if tracker is not None else None
    if moving is None and meter is not None:
        moving = meter.is_moving()
    return buf.track(), moving, tracker, (reader.width, reader.height)


def check_track(track, video_path: str, warn) -> None:
    T = len(track)
    name = os.path.basename(video_path)
    if T == 0:
        raise EngineError("no_frames", f"No frames could be read from '{name}'.")
    if not track.valid.any():
        raise EngineError("no_person", f"No person was found in '{name}'. "
                                       "The whole body should be visible and not too small in the frame.")
    n_missing = int((~track.valid).sum())
    if n_missing:
        warn("frames_without_person", f"No person was found in {n_missing} of {T} frames; "
                                      "those frames are interpolated.")


def run(opts: RunOptions, proto: Protocol) -> dict:
    from . import video
    from .result import write_result

    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    proto.check_cancel()                       # a SIGTERM that arrived during start-up
    options.check_numbers(opts.job)
    options.check_numbers(opts.camera)
    out = options.check_output(opts.job.out, opts.job.video)
    # temporary files a killed earlier run left next to the output (never a live writer's: result.py)
    from .result import remove_stale_temps

    stale = remove_stale_temps(out.parent, time.time())
    if stale:
        log.info("removed %d stale temporary file(s) next to the output: %s", len(stale), ", ".join(stale))
    if opts.device not in ("auto", "cpu", "cuda"):
        raise EngineError("usage", f"Unknown device {opts.device!r}: use auto, cpu or cuda.")
    if opts.device == "cuda":
        resolve_device("cuda")  # fail before the long pose stage
    info = video.probe(opts.job.video)
    proto.start(engine_version=__version__, device=opts.device, video=opts.job.video, out=str(out))
    warm = threading.Thread(target=_import_later_stages, name="prewarm", daemon=True)
    warm.start()
    warnings: list[dict] = []

    def warn(code: str, message: str) -> None:
        warnings.append({"code": code, "message": message})
        proto.warning(code, message)

    t0 = time.perf_counter()
    extras: dict = {}
    track, moving, tracker, processed_size = detect(opts, info, proto, warn, opts.device, extras=extras)
    timings["decode_pose"] = time.perf_counter() - t0
    from . import segments

    track, shots = segments.prepare(track, extras, output_fps(opts.job.fps, info.fps, track.times), warn)
    check_track(track, opts.job.video, warn)
    proto.progress("pose", len(track), len(track), force=True)
    warm.join()
    import torch  # loaded by now (prewarm)

    # One torch thread: the body and trajectory tensors are small, and with two threads they spin-wait on
    # each other as soon as another process holds a core (0.9 s became 18-30 s).
    torch.set_num_threads(1)
    device = resolve_device(opts.device)
    data, meta = reconstruct(track, info, opts, proto, warn, device=device, camera_moving=moving,
                             camera_tracker=tracker, timings=timings, shot=shots["shot"])
    data.update(segments.result_fields(shots, len(track), (info.display_width, info.display_height)))
    meta["shots"] = {"cuts": [int(c) for c in shots["cuts"]], "fades": [list(map(int, f)) for f in shots["fades"]],
                     "identity_jumps": shots.get("identity_jumps", [])}

    proto.progress("write", 0, 1, force=True)
    timings["total"] = time.perf_counter() - t_start
    meta.update(options=asdict(opts), device=device, warnings=warnings, processed_size=list(processed_size),
                timings=timings)
    data["meta_json"] = np.asarray(json.dumps(meta, default=float))
    proto.check_cancel()
    with proto.shielded():   # a cancel now is too late: never a written result reported as cancelled
        try:
            write_result(out, data)
        except OSError as e:
            raise EngineError("output_not_writable", f"Could not write '{out}': {e.strerror or e}.") from e
        proto.progress("write", 1, 1, force=True)
        times = data["times"]
        duration = float(times[-1] - times[0]) if len(times) > 1 else 0.0
        proto.result(str(out), frames=len(times), fps=float(data["fps"]), duration=duration, device=device)
    return meta
