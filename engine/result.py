"""The result file: one ``.npz`` readable with numpy alone (``allow_pickle=False``).

The format is documented field by field in docs/result_format.md; ``FIELDS`` below is the same list
in code and ``validate`` checks a loaded file against it. Writes are atomic: the archive is written to
a temporary file in the destination folder, fsynced, then renamed over the target.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .options import TEMP_PREFIX, TEMP_SUFFIX

FORMAT_NAME = "video_mocap.result"
FORMAT_VERSION = 1

# name -> (dtype kind(s), shape spec). Shape spec letters: T frames, J joints, L landmarks (33), C contacts.
FIELDS: dict[str, tuple[str, tuple]] = {
    "format": ("U", ()),
    "format_version": ("i", ()),
    "engine_version": ("U", ()),
    "fps": ("f", ()),
    "times": ("f", ("T",)),
    "frame_index": ("i", ("T",)),
    "valid": ("b", ("T",)),
    "joint_names": ("U", ("J",)),
    "parents": ("i", ("J",)),
    "rest_offsets": ("f", ("J", 3)),
    "rotations": ("f", ("T", "J", 4)),
    "root_translation": ("f", ("T", 3)),
    "joints_world": ("f", ("T", "J", 3)),
    "joint_confidence": ("f", ("T", "J")),
    "image_size": ("i", (2,)),
    "camera_intrinsics": ("f", (3, 3)),
    "camera_extrinsics": ("f", ("T", 4, 4)),
    "camera_static": ("b", ()),
    "body_model": ("U", ()),
    "shape_names": ("U", ("S",)),
    "shape_params": ("f", ("S",)),
    "body_height": ("f", ()),
    "contact_names": ("U", ("C",)),
    "foot_contacts": ("b", ("T", "C")),
    "landmarks_image": ("f", ("T", "L", 3)),
    "landmarks_world": ("f", ("T", "L", 3)),
    "landmarks_visibility": ("f", ("T", "L")),
    "video_path": ("U", ()),
    "video_size": ("i", (2,)),
    "video_fps": ("f", ()),
    "video_rotation": ("i", ()),
    "video_duration": ("f", ()),
    "meta_json": ("U", ()),
}

# Optional fields (added without a version bump; readers must not require them). N = number of cuts.
OPTIONAL_FIELDS: dict[str, tuple[str, tuple]] = {
    "shot": ("i", ("T",)),
    "cuts": ("i", ("N",)),
    "lost": ("b", ("T",)),
    "person_box": ("f", ("T", 4)),
    # the body mesh (engine/body_mesh.py): V vertices, F triangles, K joints per vertex
    "mesh_vertices": ("f", ("V", 3)),
    "mesh_faces": ("i", ("F", 3)),
    "mesh_weight_joints": ("i", ("V", "K")),
    "mesh_weights": ("f", ("V", "K")),
}
MESH_FIELDS = ("mesh_vertices", "mesh_faces", "mesh_weight_joints", "mesh_weights")


# Temporary names: TEMP_PREFIX + tempfile's 8 random characters + TEMP_SUFFIX (engine/options.py)
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))


class ResultFormatError(ValueError):
    pass


def write_result(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Validate ``data`` and write it atomically to ``path`` (a ``.npz``). Returns the final path."""
    arrays = {k: np.asarray(v) for k, v in data.items()}
    arrays.setdefault("format", np.asarray(FORMAT_NAME))
    arrays.setdefault("format_version", np.asarray(FORMAT_VERSION, dtype=np.int32))
    validate(arrays)
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    # A short temporary name (any legal target name leaves room for it), created 0600 by mkstemp and
    # given the mode a plain open() would: the replaced file's mode, else 0666 minus the umask.
    # While it exists it is locked (flock): ``remove_stale_temps`` tells a live writer's temp from one
    # left by a killed writer (the kernel drops the lock with the process, SIGKILL included).
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    try:
        _lock(fd, block=True)
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = 0o666 & ~_umask()
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)
    return path


def _lock(fd: int, *, block: bool) -> bool:
    """An exclusive flock on ``fd``; False when another process holds it (non-blocking). Always True
    where flock does not exist (no cleanup is attempted there)."""
    try:
        import fcntl
    except ImportError:   # not POSIX
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def remove_stale_temps(folder: str | os.PathLike, before: float) -> list[str]:
    """Remove the temporary files ``write_result`` left in ``folder`` when its process was killed while
    writing: names of its own pattern only (``.vm-XXXXXXXX.tmp``), regular files of this user, last
    modified before ``before`` (a time.time(); the start of the current run) and not locked by a live
    writer. Returns the names removed; problems (a file gone meanwhile, no permission) are skipped."""
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return []
    removed: list[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not _TEMP_NAME.fullmatch(name):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_mtime >= before or st.st_uid != os.getuid():
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            same = os.fstat(fd)
            if (same.st_ino, same.st_dev) != (st.st_ino, st.st_dev) or not _lock(fd, block=False):
                continue   # replaced meanwhile, or a live writer holds it
            cur = os.lstat(path)
            if (cur.st_ino, cur.st_dev) == (st.st_ino, st.st_dev):
                os.unlink(path)
                removed.append(name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_result(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load and validate a result file. Never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ResultFormatError(f"{path}: not a readable result file ({e})") from e
    validate(data)
    return data


def meta(data: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return json.loads(str(data["meta_json"]))


def validate(data: Mapping[str, np.ndarray]) -> None:
    """Check names, dtypes and shapes; raise ResultFormatError with every problem found."""
    problems: list[str] = []
    fmt = str(data.get("format", ""))
    if fmt != FORMAT_NAME:
        problems.append(f"format is {fmt!r}, expected {FORMAT_NAME!r}")
    version = int(data["format_version"]) if "format_version" in data else -1
    if version > FORMAT_VERSION:
        problems.append(f"format_version {version} is newer than this reader ({FORMAT_VERSION})")
    dims: dict[str, int] = {"L": 33}
    for name, (kinds, spec) in {**FIELDS, **OPTIONAL_FIELDS}.items():
        if name not in data:
            if name in FIELDS:
                problems.append(f"missing field {name!r}")
            continue
        a = np.asarray(data[name])
        if a.dtype.kind not in kinds and not (kinds == "f" and a.dtype.kind == "i"):
            problems.append(f"{name}: dtype {a.dtype} (kind {a.dtype.kind!r}), expected kind {kinds!r}")
        if a.dtype.kind == "O":
            problems.append(f"{name}: object arrays are not allowed")
        if len(spec) != a.ndim:
            problems.append(f"{name}: shape {a.shape}, expected {spec}")
            continue
        for s, n in zip(spec, a.shape):
            if isinstance(s, int):
                if s != n:
                    problems.append(f"{name}: shape {a.shape}, expected {spec}")
            elif dims.setdefault(s, n) != n:
                problems.append(f"{name}: size {n} for {s}, elsewhere {dims[s]}")
    if not problems:
        parents = np.asarray(data["parents"])
        if parents[0] != -1 or any(p >= j for j, p in enumerate(parents) if j > 0):
            problems.append("parents must list the root first and every parent before its child")
        if not np.all(np.isfinite(np.asarray(data["joints_world"], dtype=np.float64))):
            problems.append("joints_world has non-finite values")
        problems += _mesh_problems(data)
    if problems:
        raise ResultFormatError("invalid result file: " + "; ".join(problems))


def _mesh_problems(data: Mapping[str, np.ndarray]) -> list[str]:
    """The mesh members come all together, index existing vertices and joints, and weigh to 1."""
    present = [k for k in MESH_FIELDS if k in data]
    if not present:
        return []
    if len(present) != len(MESH_FIELDS):
        return [f"mesh members incomplete: {sorted(set(MESH_FIELDS) - set(present))} missing"]
    out = []
    V, J = len(data["mesh_vertices"]), len(data["joint_names"])
    faces, joints = np.asarray(data["mesh_faces"]), np.asarray(data["mesh_weight_joints"])
    w = np.asarray(data["mesh_weights"], np.float64)
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        out.append("mesh_faces index vertices that do not exist")
    if joints.size and (joints.min() < 0 or joints.max() >= J):
        out.append("mesh_weight_joints index joints that do not exist")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(np.asarray(data["mesh_vertices"], np.float64)))):
        out.append("mesh_vertices or mesh_weights have non-finite values")
    elif w.size and (w.min() < 0 or np.abs(w.sum(axis=1) - 1).max() > 1e-3):
        out.append("mesh_weights must be >= 0 and sum to 1 per vertex")
    return out


def assemble(track, info, clip, motion, traj, *, video_path: str, engine_version: str,
             body_mesh: bool = True) -> dict[str, np.ndarray]:
    """The result arrays (every field but ``meta_json``) from the stages' records, with the body mesh
    (``mesh_*``, engine/body_mesh.py) unless ``body_mesh`` is false.

    ``track``: the keypoints' LandmarkTrack; ``info``: the video's VideoInfo; ``clip``, ``motion``,
    ``traj``: engine.stages.records (Clip, BodyMotion, Trajectory). World joints come from forward
    kinematics of the world root and the local rotations; contacts from engine.contacts.
    """
    import torch

    from . import contacts as ct
    from . import skeleton as sk
    from .geometry import rotations as rot

    rotations = np.array(motion.rotations, np.float32)           # (T, J, 3, 3) local
    rotations[:, 0] = traj.root_orient_world
    rest = np.asarray(motion.rest_offsets, np.float32)
    root_w = np.asarray(traj.root_world, np.float32)
    _, joints_w = sk.forward_kinematics(rotations, root_w, rest)
    # TP predicts contacts (trained on labels of the same definition) more reliably than the definition
    # applied to the estimated feet, which slide and float (sample: precision/recall 0.55/0.41 vs 0.38/0.08)
    contacts = traj.contacts if traj.contacts is not None else ct.from_joints(joints_w, clip.fps, rest)
    quats = rot.quat_continuity(rot.matrix_to_quat_wxyz(torch.as_tensor(rotations))).numpy()
    out = {
        "engine_version": np.asarray(engine_version),
        "fps": np.asarray(clip.fps, np.float64),
        "times": track.times,
        "frame_index": track.frame_index,
        "valid": track.valid,
        "joint_names": np.asarray(sk.JOINT_NAMES),
        "parents": np.asarray(sk.PARENTS, np.int32),
        "rest_offsets": rest,
        "rotations": quats.astype(np.float32),
        "root_translation": root_w,
        "joints_world": joints_w.astype(np.float32),
        "joint_confidence": np.asarray(motion.joint_confidence, np.float32),
        "image_size": np.asarray([clip.width, clip.height], np.int32),
        "camera_intrinsics": clip.intrinsics.astype(np.float32),
        "camera_extrinsics": np.asarray(traj.camera_extrinsics, np.float32),
        "camera_static": np.asarray(bool(traj.camera_static)),
        "body_model": np.asarray("anny"),
        "shape_names": np.asarray(motion.shape_names),
        "shape_params": np.asarray(motion.shape_params, np.float32),
        "body_height": np.asarray(motion.height, np.float32),
        "contact_names": np.asarray(sk.CONTACT_JOINTS),
        "foot_contacts": contacts,
        "landmarks_image": track.image,
        "landmarks_world": track.world,
        "landmarks_visibility": track.visibility,
        "video_path": np.asarray(str(video_path)),
        "video_size": np.asarray([info.width, info.height], np.int32),
        "video_fps": np.asarray(info.fps, np.float64),
        "video_rotation": np.asarray(info.rotation, np.int32),
        "video_duration": np.asarray(info.duration or 0.0, np.float64),
    }
    if body_mesh:
        from .body_mesh import mesh_fields

        out.update(mesh_fields(rest, out["shape_names"], out["shape_params"]))
    return out
