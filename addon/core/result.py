"""A small, defensive reader for the engine's result file (docs/result_format.md), without ``engine``.

Result files may come from anywhere (shared, downloaded, damaged), so everything read is checked
before the add-on uses it, and reading never costs more memory than the fields it needs:

- only the documented members the add-on uses are opened (unknown members, e.g. a 1.5 GiB junk
  entry, are never read); the optional body mesh (``mesh_*``) is read and checked like the rest:
  all four members or none, vertex and joint indices in range, weights >= 0 summing to 1;
- each member's size is checked from the zip directory and its ``.npy`` header *before* loading
  (a header declaring 64 GiB is refused, not allocated), and must agree with the zip entry;
- dtypes (numbers, strings; never objects, never structured), shapes, finite values, strictly
  increasing times, a sane frame rate and frame count, unit quaternions (near-unit ones are
  normalised, zero or far-from-unit ones refused), joint names Blender can hold (1..63 UTF-8 bytes).

Every problem is a :class:`ResultError` with a message ready to show; never a traceback. Never
unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_NAME = "video_mocap.result"
FORMAT_VERSION = 1

FloatArray = npt.NDArray[np.float64]

MAX_JOINTS = 512
MAX_FRAMES = 1_000_000             # Blender's scene frames end at 1,048,574
MAX_FPS = 1000.0
MAX_NAME_BYTES = 63                # Blender's name limit (64 bytes with the terminating NUL)
MAX_MEMBER_BYTES = 1 << 30         # largest array the add-on loads (1 GiB)
MAX_MESH_VERTICES = 1_000_000
MAX_MESH_FACES = 4_000_000
MAX_MESH_INFLUENCES = 16           # joints per vertex
MESH_WEIGHT_SUM_TOL = 1e-3
QUAT_NORM_TOL = 1e-2               # |‖q‖ − 1| up to this is rounding: normalised; beyond it, refused

# name -> (allowed dtype kinds, required): the members the add-on reads; nothing else is opened.
_MEMBERS: dict[str, tuple[str, bool]] = {
    "format": ("U", True), "format_version": ("iu", True), "fps": ("fiu", True), "times": ("fiu", True),
    "joint_names": ("U", True), "parents": ("iu", True), "rest_offsets": ("fiu", True),
    "rotations": ("fiu", True), "root_translation": ("fiu", True), "joints_world": ("fiu", True),
    "video_path": ("U", False), "camera_static": ("b", False),
    # optional channels keyed as custom properties (dropped, never refused, when they do not fit)
    "joint_confidence": ("fiu", False), "contact_names": ("U", False), "foot_contacts": ("biu", False),
    # optional shot and person-tracking fields (engine 0.x): frames where the person was lost, shots, cuts
    "lost": ("biu", False), "shot": ("iu", False),
    # the body mesh (docs/result_format.md): all four or none; checked strictly when present
    "mesh_vertices": ("fiu", False), "mesh_faces": ("iu", False), "mesh_weight_joints": ("iu", False),
    "mesh_weights": ("fiu", False),
}
MESH_MEMBERS = ("mesh_vertices", "mesh_faces", "mesh_weight_joints", "mesh_weights")


class ResultError(ValueError):
    """The file is not a result this add-on can read; the message is ready to show to a user."""


@dataclass(frozen=True)
class BodyMesh:
    """The body in the skeleton's rest pose, skinned to its joints. V vertices, F triangles, K influences."""

    vertices: FloatArray                # (V, 3) metres, rest pose, armature space of the created armature
    faces: npt.NDArray[np.int64]        # (F, 3) vertex indices
    weight_joints: npt.NDArray[np.int64]  # (V, K) joint indices
    weights: FloatArray                 # (V, K) >= 0, rows sum to 1


@dataclass(frozen=True)
class MotionResult:
    """The parts of a result file the add-on needs. Shapes: T frames, J joints."""

    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_offsets: FloatArray       # (J, 3) metres, offset from the parent joint (root: rest position)
    rotations: FloatArray          # (T, J, 4) wxyz, local, world-aligned rest frames
    root_translation: FloatArray   # (T, 3)
    joints_world: FloatArray       # (T, J, 3)
    times: FloatArray              # (T,) seconds from the start of the video
    fps: float
    video_path: str
    camera_static: bool
    joint_confidence: FloatArray | None = None   # (T, J) when the file has it
    contact_names: tuple[str, ...] = ()
    foot_contacts: FloatArray | None = None      # (T, C) 0/1 when the file has it
    lost: npt.NDArray[np.bool_] | None = None    # (T,) the person was lost in these frames
    shot: npt.NDArray[np.int64] | None = None    # (T,) shot number of each frame (0, 1, ...; non-decreasing)
    cuts: tuple[int, ...] = ()                   # first frame of each new shot
    mesh: BodyMesh | None = None                 # the body mesh when the file has one

    @property
    def frames(self) -> int:
        return int(self.rotations.shape[0])


def _load_member(zf: zipfile.ZipFile, name: str, kinds: str) -> npt.NDArray[Any]:
    """One ``.npy`` member, its header and size checked before anything is allocated."""
    info = zf.getinfo(name + ".npy")
    if info.file_size > MAX_MEMBER_BYTES:
        raise ResultError(f"Result field {name} is too large ({info.file_size} bytes)")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ResultError(f"Result field {name} has an unknown .npy version {version}")
        header_len = fh.tell()
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in kinds:
        raise ResultError(f"Result field {name} has an unexpected type ({dtype})")
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * dtype.itemsize
    if nbytes > MAX_MEMBER_BYTES:
        raise ResultError(f"Result field {name} declares {nbytes} bytes of data, more than this add-on reads")
    if header_len + nbytes != info.file_size:
        raise ResultError(f"Result field {name} is damaged (its header does not match its size)")
    with zf.open(info) as fh:
        arr: npt.NDArray[Any] = np.lib.format.read_array(fh, allow_pickle=False)
    if tuple(arr.shape) != tuple(shape):
        raise ResultError(f"Result field {name} is damaged (truncated data)")
    return arr


def _scalar(a: npt.NDArray[Any], name: str) -> Any:
    if a.shape != ():
        raise ResultError(f"Result field {name} should be a single value, has shape {a.shape}")
    return a.item()


def read_result(path: str | os.PathLike[str]) -> MotionResult:
    """Load ``path`` and check everything the add-on uses (see the module docstring)."""
    try:
        with zipfile.ZipFile(path) as zf:
            present = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
            data: dict[str, npt.NDArray[Any]] = {}
            for name, (kinds, required) in _MEMBERS.items():
                if name in present:
                    data[name] = _load_member(zf, name, kinds)
                elif name in ("format", "format_version"):
                    raise ResultError(f"Not a Video Mocap result file (no {name})")
    except ResultError:
        raise
    except Exception as e:  # noqa: BLE001 - OSError, BadZipFile, zlib.error, ValueError, ...: a damaged file
        raise ResultError(f"Not a readable result file: {os.path.basename(os.fspath(path))} ({e})") from e
    return _check(data)


def _check(data: dict[str, npt.NDArray[Any]]) -> MotionResult:
    fmt = str(_scalar(data["format"], "format"))
    if fmt != FORMAT_NAME:
        raise ResultError(f"Not a Video Mocap result file (format {fmt[:80]!r})")
    version = int(_scalar(data["format_version"], "format_version"))
    if version < 1 or version > FORMAT_VERSION:
        raise ResultError(f"Result format version {version} is not supported by this add-on "
                          f"(reads up to {FORMAT_VERSION}); update the add-on")
    missing = [k for k, (_kinds, required) in _MEMBERS.items() if required and k not in data]
    if missing:
        raise ResultError(f"Result file lacks fields: {', '.join(missing)}")

    names_a, parents_a = data["joint_names"], data["parents"]
    if names_a.ndim != 1 or parents_a.ndim != 1:
        raise ResultError("Result file has malformed joint_names or parents")
    names = tuple(str(n) for n in names_a)
    J = len(names)
    if J == 0 or J > MAX_JOINTS:
        raise ResultError(f"Result file has {J} joints (expected 1 to {MAX_JOINTS})")
    for n in names:
        size = len(n.encode("utf-8"))
        if size == 0 or size > MAX_NAME_BYTES or "\0" in n:
            raise ResultError(f"Result file has a joint name Blender cannot hold ({n[:80]!r}: "
                              f"1 to {MAX_NAME_BYTES} bytes, no NUL)")
    if len(set(names)) != J:
        raise ResultError("Result file has duplicate joint names")
    times = np.asarray(data["times"], dtype=np.float64)
    if times.ndim != 1:
        raise ResultError(f"Result field times should be one-dimensional, has shape {times.shape}")
    T = times.shape[0]
    if T == 0:
        raise ResultError("Result file holds no frames")
    if T > MAX_FRAMES:
        raise ResultError(f"Result file holds {T} frames, more than this add-on imports ({MAX_FRAMES})")
    rest = np.asarray(data["rest_offsets"], dtype=np.float64)
    rot = np.asarray(data["rotations"], dtype=np.float64)
    trans = np.asarray(data["root_translation"], dtype=np.float64)
    world = np.asarray(data["joints_world"], dtype=np.float64)
    shapes = {"parents": (parents_a.shape, (J,)), "rest_offsets": (rest.shape, (J, 3)),
              "rotations": (rot.shape, (T, J, 4)), "root_translation": (trans.shape, (T, 3)),
              "joints_world": (world.shape, (T, J, 3))}
    bad = [f"{k} {got} != {want}" for k, (got, want) in shapes.items() if tuple(got) != want]
    if bad:
        raise ResultError("Result file has inconsistent shapes: " + "; ".join(bad))
    parents = tuple(int(p) for p in parents_a)
    if parents[0] != -1 or any(not (0 <= p < j) for j, p in enumerate(parents) if j > 0):
        raise ResultError("Result file skeleton is not ordered root-first")
    for k, a in (("times", times), ("rotations", rot), ("root_translation", trans), ("rest_offsets", rest),
                 ("joints_world", world)):
        if not np.all(np.isfinite(a)):
            raise ResultError(f"Result file has non-finite values in {k}")
    for k, a in (("root_translation", trans), ("rest_offsets", rest), ("joints_world", world)):
        if np.abs(a).max() > 1e6:
            raise ResultError(f"Result file has positions beyond a thousand kilometres in {k}")
    fps = float(_scalar(data["fps"], "fps"))
    if not (np.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise ResultError(f"Result file has an invalid fps ({fps}); expected a rate up to {MAX_FPS:g}")
    if T > 1 and not np.all(np.diff(times) > 0):
        raise ResultError("Result file times are not strictly increasing")
    if (times[-1] - times[0]) * fps > MAX_FRAMES:
        raise ResultError(f"Result file spans {times[-1] - times[0]:.6g} s at {fps:g} fps: more than "
                          f"{MAX_FRAMES} scene frames")
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.linalg.norm(rot, axis=-1)
    far = np.abs(norms - 1.0) > QUAT_NORM_TOL
    if far.any():
        t, j = (int(i) for i in np.argwhere(far)[0])
        raise ResultError(f"Result file has an invalid rotation (quaternion of length {norms[t, j]:.3g}, "
                          f"joint {names[j]!r}, frame {t}); rotations must be unit quaternions")
    rot = rot / norms[..., None]
    video_path = str(_scalar(data["video_path"], "video_path")) if "video_path" in data else ""
    camera_static = bool(_scalar(data["camera_static"], "camera_static")) if "camera_static" in data else True
    return MotionResult(
        joint_names=names, parents=parents, rest_offsets=rest, rotations=rot,
        root_translation=trans, joints_world=world, times=times, fps=fps,
        video_path=video_path, camera_static=camera_static,
        mesh=_mesh(data, J),
        **_optional_channels(data, T, J),
    )


def _mesh(data: dict[str, npt.NDArray[Any]], J: int) -> BodyMesh | None:
    """The body mesh, or None when the file has none; a present but broken one is refused (ResultError)."""
    present = [k for k in MESH_MEMBERS if k in data]
    if not present:
        return None
    if len(present) != len(MESH_MEMBERS):
        missing = ", ".join(k for k in MESH_MEMBERS if k not in data)
        raise ResultError(f"Result file has an incomplete body mesh (no {missing})")
    verts = np.asarray(data["mesh_vertices"], dtype=np.float64)
    faces, joints = data["mesh_faces"], data["mesh_weight_joints"]
    weights = np.asarray(data["mesh_weights"], dtype=np.float64)
    if verts.ndim != 2 or verts.shape[1] != 3 or not 3 <= verts.shape[0] <= MAX_MESH_VERTICES:
        raise ResultError(f"Result body mesh has vertices of shape {verts.shape} (expected (V, 3), "
                          f"3 <= V <= {MAX_MESH_VERTICES})")
    V = verts.shape[0]
    if faces.ndim != 2 or faces.shape[1] != 3 or not 1 <= faces.shape[0] <= MAX_MESH_FACES:
        raise ResultError(f"Result body mesh has faces of shape {faces.shape} (expected (F, 3) triangles, "
                          f"1 <= F <= {MAX_MESH_FACES})")
    if joints.ndim != 2 or joints.shape[0] != V or not 1 <= joints.shape[1] <= MAX_MESH_INFLUENCES \
            or weights.shape != joints.shape:
        raise ResultError(f"Result body mesh weights have shapes {joints.shape} and {weights.shape} "
                          f"(expected (V, K) with V = {V}, 1 <= K <= {MAX_MESH_INFLUENCES})")
    if not (np.all(np.isfinite(verts)) and np.all(np.isfinite(weights))):
        raise ResultError("Result body mesh has non-finite vertices or weights")
    if np.abs(verts).max() > 1e6:
        raise ResultError("Result body mesh has vertices beyond a thousand kilometres")
    if faces.min() < 0 or faces.max() >= V:
        raise ResultError(f"Result body mesh has faces that name vertices it does not have (0..{V - 1})")
    if np.any((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])):
        raise ResultError("Result body mesh has degenerate faces (a vertex repeated)")
    if joints.min() < 0 or joints.max() >= J:
        raise ResultError(f"Result body mesh weights name joints the skeleton does not have (0..{J - 1})")
    sums = weights.sum(axis=1)
    if weights.min() < 0 or np.abs(sums - 1.0).max() > MESH_WEIGHT_SUM_TOL:
        raise ResultError("Result body mesh weights must be >= 0 and sum to 1 for every vertex")
    return BodyMesh(vertices=verts, faces=faces.astype(np.int64), weight_joints=joints.astype(np.int64),
                    weights=weights / sums[:, None])


def _optional_channels(data: dict[str, npt.NDArray[np.generic]], T: int, J: int) -> dict[str, object]:
    """Per-frame confidence and foot contacts, kept only when their shapes fit (never required)."""
    out: dict[str, object] = {}
    conf = data.get("joint_confidence")
    if conf is not None and conf.shape == (T, J) and np.all(np.isfinite(conf.astype(np.float64))):
        out["joint_confidence"] = np.clip(np.asarray(conf, dtype=np.float64), 0.0, 1.0)
    lost = data.get("lost")
    if lost is not None and lost.shape == (T,):
        out["lost"] = np.asarray(lost).astype(bool)
    shot = data.get("shot")
    if shot is not None and shot.shape == (T,):
        sh = np.asarray(shot, dtype=np.int64)
        if sh[0] == 0 and np.all(np.diff(sh) >= 0) and np.all(np.diff(sh) <= 1):
            out["shot"] = sh
            out["cuts"] = tuple(int(c) for c in np.flatnonzero(np.diff(sh)) + 1)
    names, cont = data.get("contact_names"), data.get("foot_contacts")
    if (names is not None and cont is not None and cont.shape == (T, names.size)
            and all(0 < len(str(n).encode("utf-8")) <= MAX_NAME_BYTES for n in names.reshape(-1))):
        out["contact_names"] = tuple(str(n) for n in names.reshape(-1))
        out["foot_contacts"] = np.asarray(cont, dtype=np.float64)
    return out
