"""A small reader for the engine's result file (docs/result_format.md), without the ``engine`` package.

Only the fields the add-on uses are checked here; the engine's own ``engine/result.py`` validates the
whole format when it writes the file. Never unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FORMAT_NAME = "video_mocap.result"
FORMAT_VERSION = 1

FloatArray = npt.NDArray[np.float64]


class ResultError(ValueError):
    """The file is not a result this add-on can read; the message is ready to show to a user."""


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

    @property
    def frames(self) -> int:
        return int(self.rotations.shape[0])


def read_result(path: str | os.PathLike[str]) -> MotionResult:
    """Load ``path`` and check format name, version and the shapes of the fields used."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ResultError(f"Not a readable result file: {os.fspath(path)} ({e})") from e
    fmt = str(data.get("format", ""))
    if fmt != FORMAT_NAME:
        raise ResultError(f"Not a Video Mocap result file (format {fmt!r})")
    version = int(data.get("format_version", -1))
    if version < 1 or version > FORMAT_VERSION:
        raise ResultError(f"Result format version {version} is not supported by this add-on "
                          f"(reads up to {FORMAT_VERSION}); update the add-on")
    needed = ("joint_names", "parents", "rest_offsets", "rotations", "root_translation",
              "joints_world", "times", "fps")
    missing = [k for k in needed if k not in data]
    if missing:
        raise ResultError(f"Result file lacks fields: {', '.join(missing)}")

    names = tuple(str(n) for n in data["joint_names"].reshape(-1))
    parents = tuple(int(p) for p in data["parents"].reshape(-1))
    rest = np.asarray(data["rest_offsets"], dtype=np.float64)
    rot = np.asarray(data["rotations"], dtype=np.float64)
    trans = np.asarray(data["root_translation"], dtype=np.float64)
    world = np.asarray(data["joints_world"], dtype=np.float64)
    times = np.asarray(data["times"], dtype=np.float64).reshape(-1)
    J, T = len(names), times.shape[0]
    shapes = {"parents": (len(parents), (J,)), "rest_offsets": (rest.shape, (J, 3)),
              "rotations": (rot.shape, (T, J, 4)), "root_translation": (trans.shape, (T, 3)),
              "joints_world": (world.shape, (T, J, 3))}
    bad = [f"{k} {got} != {want}" for k, (got, want) in shapes.items()
           if (got if isinstance(got, tuple) else (got,)) != want]
    if bad:
        raise ResultError("Result file has inconsistent shapes: " + "; ".join(bad))
    if T == 0 or J == 0:
        raise ResultError("Result file holds no frames")
    if parents[0] != -1 or any(not (0 <= p < j) for j, p in enumerate(parents) if j > 0):
        raise ResultError("Result file skeleton is not ordered root-first")
    if len(set(names)) != J:
        raise ResultError("Result file has duplicate joint names")
    for k, a in (("rotations", rot), ("root_translation", trans), ("rest_offsets", rest)):
        if not np.all(np.isfinite(a)):
            raise ResultError(f"Result file has non-finite values in {k}")
    fps = float(data["fps"])
    if not fps > 0:
        raise ResultError(f"Result file has an invalid fps ({fps})")
    return MotionResult(
        joint_names=names, parents=parents, rest_offsets=rest, rotations=rot,
        root_translation=trans, joints_world=world, times=times, fps=fps,
        video_path=str(data.get("video_path", "")),
        camera_static=bool(data.get("camera_static", True)),
        **_optional_channels(data, T, J),
    )


def _optional_channels(data: dict[str, npt.NDArray[np.generic]], T: int, J: int) -> dict[str, object]:
    """Per-frame confidence and foot contacts, kept only when their shapes fit (never required)."""
    out: dict[str, object] = {}
    conf = data.get("joint_confidence")
    if conf is not None and conf.shape == (T, J):
        out["joint_confidence"] = np.asarray(conf, dtype=np.float64)
    names, cont = data.get("contact_names"), data.get("foot_contacts")
    if names is not None and cont is not None and cont.shape == (T, names.size):
        out["contact_names"] = tuple(str(n) for n in names.reshape(-1))
        out["foot_contacts"] = np.asarray(cont, dtype=np.float64)
    return out
