"""Shots and lost frames of a result, for the animator (pure; no bpy): which frame ranges the engine
lost the person in, where the shot cuts are (as timeline markers), and one shot cut out of a result.

Markers are ``(name, scene frame)`` pairs: ``"lost A-B"`` at the first frame of each range of lost
frames (``"lost A"`` for one frame; A and B are scene frames, as the timeline shows them) and ``"cut"``
at the first frame of each new shot.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .result import MotionResult, ResultError


class Marker(NamedTuple):
    name: str
    frame: int


def ranges(mask: npt.ArrayLike) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` index ranges of the True runs of a 1-D mask."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if not m.any():
        return []
    d = np.diff(np.r_[0, m.astype(np.int8), 0])
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def shot_count(result: MotionResult) -> int:
    return 1 if result.shot is None else int(result.shot[-1]) + 1


def select_shot(result: MotionResult, number: int) -> MotionResult:
    """Shot ``number`` (1-based) of ``result`` alone: every per-frame array cut to its frames (its
    times keep their place in the video; the add-on keys from the first of them). 0 = all shots."""
    n = shot_count(result)
    if number == 0:
        return result
    if not 1 <= number <= n:
        raise ResultError(f"The result has {n} shot{'s' if n != 1 else ''}; there is no shot {number}")
    if result.shot is None:
        return result
    idx = np.flatnonzero(result.shot == number - 1)
    sl = slice(int(idx[0]), int(idx[-1]) + 1)

    def cut(a: npt.NDArray[np.generic] | None) -> npt.NDArray[np.generic] | None:
        return None if a is None else a[sl]

    return dataclasses.replace(
        result, rotations=result.rotations[sl], root_translation=result.root_translation[sl],
        joints_world=result.joints_world[sl], times=result.times[sl],
        joint_confidence=cut(result.joint_confidence), foot_contacts=cut(result.foot_contacts),
        lost=cut(result.lost), shot=np.zeros(sl.stop - sl.start, dtype=np.int64), cuts=())


def markers(result: MotionResult, frames: npt.ArrayLike) -> list[Marker]:
    """Timeline markers for ``result`` keyed at scene ``frames`` (T,): lost ranges and cuts, by frame."""
    f = np.asarray(frames, dtype=np.float64).reshape(-1)
    if len(f) != result.frames:
        raise ValueError(f"{len(f)} frames for a result of {result.frames}")
    out: list[Marker] = []
    if result.lost is not None:
        for a, b in ranges(result.lost):
            fa, fb = int(np.floor(f[a] + 1e-6)), int(np.floor(f[b] + 1e-6))
            out.append(Marker(f"lost {fa}-{fb}" if fb > fa else f"lost {fa}", fa))
    for c in result.cuts:
        if 0 < c < len(f):
            out.append(Marker("cut", int(np.floor(f[c] + 1e-6))))
    return sorted(out, key=lambda m: (m.frame, m.name))
