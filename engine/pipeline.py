"""The engine's pipeline v1: decode -> BlazePose -> body solve -> trajectory -> result file.

Each stage is a module with a small interface (video, pose, solve, trajectory, result); this module
wires them together, reports progress through :class:`engine.protocol.Protocol` and raises
:class:`engine.errors.EngineError` for anything the user must fix.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import __version__
from . import skeleton as sk
from .errors import EngineError
from .protocol import Protocol

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    video: str
    out: str
    device: str = "auto"           # auto | cpu | cuda
    start_frame: int | None = None
    end_frame: int | None = None   # exclusive
    fps: float | None = None       # target output rate (subsample); None = every frame
    focal: float | None = None     # pixels, of the displayed frame
    fov: float | None = None       # horizontal field of view, degrees (used when focal is None)
    camera: str = "auto"           # auto | static | moving
    max_side: int = 1280           # processing resolution cap
    iterations: int = 40           # body-solve refinement steps
    # Temporal filtering. Landmarks get a zero-lag Savitzky-Golay filter (order 2) over ``smoothing``
    # seconds: 0.17 s is TAR's 5-frame window at 30 fps; on fast mocap (kicks, throws, martial arts) it
    # moves joints by 1.3 mm on average (99th percentile 7.7 mm), while 0.25 s already flattens peaks by
    # 36 mm. The solve's acceleration penalty (20) halves jitter on noisy landmarks without raising MPJPE.
    smoothing: float = 0.17
    smooth_weight: float = 20.0


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


def check_output(out: str) -> Path:
    path = Path(out)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise EngineError("output_not_writable", f"The output path '{out}' is a folder; give a file name.")
    if not folder.is_dir():
        raise EngineError("output_not_writable", f"The output folder '{folder}' does not exist.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vmcheck.", delete=True):
            pass
    except OSError as e:
        raise EngineError("output_not_writable", f"Cannot write to the output folder '{folder}': "
                                                 f"{e.strerror or e}.") from e
    return path


def reconstruct(track, info, opts: RunOptions, proto: Protocol, warn, *, device: str = "cpu",
                camera_moving: bool | None = None, timings: dict | None = None) -> tuple[dict, dict]:
    """Landmark track -> result arrays (all fields but ``meta_json``) and metadata.

    The stages after detection; separate so that tools (benchmarks, training) can rerun them on
    cached landmarks.
    """
    import torch

    from . import solve, trajectory
    from .geometry import rotations as rot

    timings = {} if timings is None else timings
    T = len(track)
    # -- body solve ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    valid = track.valid
    world = trajectory.fill_gaps(track.world, valid)
    image = trajectory.fill_gaps(track.image, valid)
    vis = np.where(valid[:, None], track.visibility, 0.0).astype(np.float32)
    fps_in = opts.fps or info.fps or (1.0 / np.median(np.diff(track.times)) if T > 1 else 30.0)
    if opts.smoothing > 0:
        world = trajectory.smooth(world, fps_in, opts.smoothing)
        image = trajectory.smooth(image, fps_in, opts.smoothing)
    Y = solve.to_body_camera(world)
    del world  # memory: keep only what later stages read (long clips)
    body = solve.measure_body(Y[valid], vis[valid])
    cfg = solve.SolveConfig(iterations=opts.iterations, w_smooth=opts.smooth_weight)
    R_local, root_bc = solve.solve_body(Y, np.maximum(vis, 0.05 * valid[:, None]), body, cfg, device=device,
                                        progress=lambda i, n: proto.progress("solve", i, n))
    del Y
    timings["solve"] = time.perf_counter() - t0

    # -- trajectory ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    proto.progress("trajectory", 0, 3, force=True)
    W, H = info.display_width, info.display_height
    if opts.focal:
        focal = float(opts.focal)
    elif opts.fov:
        focal = trajectory.focal_from_fov(opts.fov, W, H)
    else:
        focal = trajectory.default_focal(W, H)
    K = trajectory.intrinsics(focal, W, H)
    rest_t = torch.as_tensor(body.rest_offsets, dtype=torch.float32)
    R_t = torch.as_tensor(R_local)
    Rw_bc, P_bc = solve.fk_torch(R_t, torch.as_tensor(root_bc), rest_t)
    pts_bc = solve.target_points(Rw_bc, P_bc, torch.as_tensor(body.target_offsets, dtype=torch.float32)).numpy()
    del Rw_bc, R_t
    M = trajectory.M_BC_TO_CV
    pts_cv = pts_bc @ M.T
    uv = np.stack([image[:, idx, :2].mean(1) for idx in solve._T_LMS], 1) * np.array([W, H])
    wts = np.stack([vis[:, idx].min(1) for idx in solve._T_LMS], 1) * solve._T_WEIGHT.numpy()
    t_cam = trajectory.camera_translation(pts_cv, uv, wts, K)
    del pts_cv, uv, image
    if not np.isfinite(t_cam).any():
        raise EngineError("no_person", "The person could not be placed in front of the camera "
                                       "(landmarks inconsistent in every frame).")
    fps_out = fps_in
    t_cam = trajectory.reject_depth_outliers(t_cam, wts.sum(1), fps_out)
    if not np.isfinite(t_cam).any():
        raise EngineError("no_person", "The person is not visible well enough in any frame to place "
                                       "them in front of the camera.")
    t_cam = trajectory.fill_gaps(t_cam)
    t_cam[:, :2] = trajectory.smooth(t_cam[:, :2], fps_out, 0.2)
    # depth from perspective is the noisiest coordinate: a 1 s window (0.5 s gave RTE 21 %, 1 s 19 % on the
    # static dev clips; people rarely change their distance to the camera in sub-second steps)
    t_cam[:, 2] = trajectory.smooth(t_cam[:, 2:], fps_out, 1.0)[:, 0]
    proto.progress("trajectory", 1, 3)
    P_cam = P_bc.numpy() @ M.T + t_cam[:, None]                        # (T, J, 3) camera frame
    foot_idx = [k for k, (j, *_r) in enumerate(solve.TARGETS) if j.endswith("_ankle")]
    foot_cam = pts_bc[:, foot_idx] @ M.T + t_cam[:, None]
    torso_up = P_cam[:, sk.INDEX["neck"]] - P_cam[:, 0]
    wf, winfo = trajectory.estimate_world(foot_cam, torso_up, P_cam[:, 0], valid)

    camera_static = opts.camera == "static"
    if opts.camera == "auto":
        camera_static = camera_moving is not True
        winfo["camera_motion"] = None if camera_moving is None else ("moving" if camera_moving else "static")
    if not camera_static:
        warn("moving_camera", "The camera seems to move: moving cameras are not handled yet, so the "
                              "trajectory is relative to the camera and may drift or slide.")

    # world rotations/translations: p_world = B^T (p_cam - origin)
    Bt = wf.B.T
    R_root_w = np.einsum("ab,bc,tcd->tad", Bt, M, R_local[:, 0])
    R_world_local = R_local  # the solve's array, reused: only the root changes
    R_world_local[:, 0] = R_root_w
    root_w = wf.to_world(P_cam[:, 0])
    del P_cam, P_bc, foot_cam, pts_bc
    _, joints_w = sk.forward_kinematics(R_world_local.astype(np.float32), root_w.astype(np.float32),
                                        body.rest_offsets.astype(np.float32))
    proto.progress("trajectory", 2, 3)

    contact_j = [sk.INDEX[n] for n in sk.CONTACT_JOINTS]
    rest_pos = sk.rest_positions(body.rest_offsets)
    contacts = trajectory.foot_contacts(joints_w[:, contact_j], fps_out, rest_pos[contact_j, 2])
    quats = rot.quat_continuity(rot.matrix_to_quat_wxyz(torch.as_tensor(R_world_local, dtype=torch.float32)))
    E = np.repeat(wf.extrinsic()[None], T, axis=0)
    conf = np.zeros((T, sk.J), np.float32)
    joint_lm = {}
    for k, (j, *_r) in enumerate(solve.TARGETS):
        joint_lm.setdefault(sk.INDEX[j], []).append(k)
    for j in range(sk.J):
        ks = joint_lm.get(j)
        if ks:
            conf[:, j] = np.stack([vis[:, solve._T_LMS[k]].min(1) for k in ks], 1).max(1)
        else:  # unobserved joints: the mean of their neighbours' evidence
            conf[:, j] = vis[:, [11, 12, 23, 24]].mean(1)
    proto.progress("trajectory", 3, 3)
    timings["trajectory"] = time.perf_counter() - t0

    meta = {"body_scales": body.scales, "world": winfo, "focal_px": focal}
    data = {
        "engine_version": np.asarray(__version__),
        "fps": np.asarray(fps_out, np.float64),
        "times": track.times,
        "frame_index": track.frame_index,
        "valid": valid,
        "joint_names": np.asarray(sk.JOINT_NAMES),
        "parents": np.asarray(sk.PARENTS, np.int32),
        "rest_offsets": body.rest_offsets.astype(np.float32),
        "rotations": quats.numpy().astype(np.float32),
        "root_translation": root_w.astype(np.float32),
        "joints_world": joints_w.astype(np.float32),
        "joint_confidence": conf,
        "image_size": np.asarray([W, H], np.int32),
        "camera_intrinsics": K.astype(np.float32),
        "camera_extrinsics": E.astype(np.float32),
        "camera_static": np.asarray(camera_static),
        "body_model": np.asarray("anny"),
        "shape_names": np.asarray(["height"]),  # anny phenotype (0..1); more parameters come with Rope
        "shape_params": np.asarray([np.interp(body.height, [1.12, 1.625, 2.14], [0.0, 0.5, 1.0])], np.float32),
        "body_height": np.asarray(body.height, np.float32),
        "contact_names": np.asarray(sk.CONTACT_JOINTS),
        "foot_contacts": contacts,
        "landmarks_image": track.image,
        "landmarks_world": track.world,
        "landmarks_visibility": track.visibility,
        "video_path": np.asarray(str(opts.video)),
        "video_size": np.asarray([info.width, info.height], np.int32),
        "video_fps": np.asarray(info.fps, np.float64),
        "video_rotation": np.asarray(info.rotation, np.int32),
        "video_duration": np.asarray(info.duration or 0.0, np.float64),
    }
    return data, meta


def _prewarm() -> None:
    """Import the post-pose stages (torch, roma, scipy: ~3 s on a small CPU) while the pose loop runs."""
    import torch

    torch.set_num_threads(1)
    from . import solve, trajectory  # noqa: F401  (imported for their side effect: loading)
    from .geometry import rotations  # noqa: F401


def run(opts: RunOptions, proto: Protocol) -> dict:
    import threading

    from . import video
    from .camera_motion import CameraMotionMeter
    from .pose import BlazePose, LandmarkBuffer
    from .result import write_result

    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    out = check_output(opts.out)
    if opts.device not in ("auto", "cpu", "cuda"):
        raise EngineError("usage", f"Unknown device {opts.device!r}: use auto, cpu or cuda.")
    if opts.device == "cuda":
        resolve_device("cuda")  # fail before the long pose stage
    info = video.probe(opts.video)
    proto.start(engine_version=__version__, device=opts.device, video=opts.video, out=str(out))
    # One torch thread (set in _prewarm): the solve's tensors are small, and with two threads they
    # spin-wait on each other as soon as another process holds a core (0.9 s became 18-30 s).
    warm = threading.Thread(target=_prewarm, name="prewarm", daemon=True)
    warm.start()

    # -- decode + pose (overlapped: decoding runs in the reader's thread) ----------------------
    warnings: list[dict] = []

    def warn(code: str, message: str) -> None:
        warnings.append({"code": code, "message": message})
        proto.warning(code, message)

    reader = video.VideoReader(opts.video, start_frame=opts.start_frame, end_frame=opts.end_frame,
                               fps=opts.fps, max_side=opts.max_side, on_warning=warn, info=info)
    total = reader.expected_frames
    buf = LandmarkBuffer()
    meter = CameraMotionMeter() if opts.camera == "auto" else None
    t0 = time.perf_counter()
    with BlazePose() as bp, reader:
        proto.progress("pose", 0, total, force=True)
        for fr in reader:
            det = bp(fr.image)
            buf.append(fr.time, fr.index, det)
            if meter is not None:
                meter.update(fr.image, None if det is None else det.image[:, :2])
            proto.progress("pose", len(buf), total)
    timings["decode_pose"] = time.perf_counter() - t0
    track = buf.track()
    T = len(track)
    if T == 0:
        raise EngineError("no_frames", f"No frames could be read from '{os.path.basename(opts.video)}'.")
    proto.progress("pose", T, T, force=True)
    if not track.valid.any():
        raise EngineError("no_person", f"No person was found in '{os.path.basename(opts.video)}'. "
                                       "The whole body should be visible and not too small in the frame.")
    n_missing = int((~track.valid).sum())
    if n_missing:
        warn("frames_without_person", f"No person was found in {n_missing} of {T} frames; "
                                      "those frames are interpolated.")

    moving = meter.is_moving() if meter is not None else None
    warm.join()
    device = resolve_device(opts.device)
    data, meta = reconstruct(track, info, opts, proto, warn, device=device, camera_moving=moving,
                             timings=timings)

    # -- write ---------------------------------------------------------------------------------
    proto.progress("write", 0, 1, force=True)
    timings["total"] = time.perf_counter() - t_start
    meta.update(options=asdict(opts), device=device, warnings=warnings,
                processed_size=[reader.width, reader.height], timings=timings)
    data["meta_json"] = np.asarray(json.dumps(meta, default=float))
    proto.check_cancel()
    try:
        write_result(out, data)
    except OSError as e:
        raise EngineError("output_not_writable", f"Could not write '{out}': {e.strerror or e}.") from e
    proto.progress("write", 1, 1, force=True)
    times = data["times"]
    duration = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    proto.result(str(out), frames=len(times), fps=float(data["fps"]), duration=duration, device=device)
    return meta
