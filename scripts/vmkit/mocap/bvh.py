"""BVH reader (Biovision hierarchy: a text file, HIERARCHY then MOTION).

Euler channels are converted with ``scipy.spatial.transform.Rotation`` in the channel order: BVH
``Zrotation Yrotation Xrotation`` means ``R = Rz @ Ry @ Rx`` (intrinsic "ZYX"), which scipy writes as
``from_euler("ZYX", [z, y, x], degrees=True)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .source import SourceClip

_ROT = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
_POS = {"Xposition": 0, "Yposition": 1, "Zposition": 2}


class BVHError(ValueError):
    pass


def parse_bvh(text: str, path: str = "") -> SourceClip:
    tokens = text.split()
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise BVHError(f"{path}: unexpected end of file")
        pos += 1
        return tokens[pos - 1]

    def expect(word: str) -> None:
        got = take()
        if got != word:
            raise BVHError(f"{path}: expected {word!r}, got {got!r}")

    names: list[str] = []
    parents: list[int] = []
    offsets: list[tuple[float, float, float]] = []
    channels: list[list[str]] = []

    expect("HIERARCHY")
    stack: list[int] = []
    kind = take()
    if kind != "ROOT":
        raise BVHError(f"{path}: expected ROOT, got {kind!r}")
    while True:
        if kind in ("ROOT", "JOINT"):
            name = take()
        elif kind == "End":
            take()  # "Site"
            name = f"{names[stack[-1]]}_end"
        else:
            raise BVHError(f"{path}: unexpected token {kind!r}")
        expect("{")
        j = len(names)
        names.append(name)
        parents.append(stack[-1] if stack else -1)
        expect("OFFSET")
        offsets.append((float(take()), float(take()), float(take())))
        ch: list[str] = []
        if kind != "End":
            expect("CHANNELS")
            ch = [take() for _ in range(int(take()))]
        channels.append(ch)
        stack.append(j)
        # children or closing braces
        while True:
            tok = take()
            if tok == "}":
                stack.pop()
                if not stack:
                    break
                continue
            kind = tok
            break
        if not stack:
            break
    expect("MOTION")
    expect("Frames:")
    n_frames = int(take())
    expect("Frame")
    expect("Time:")
    frame_time = float(take())
    n_ch = sum(len(c) for c in channels)
    values = np.array(tokens[pos:pos + n_frames * n_ch], dtype=np.float64)
    if values.size != n_frames * n_ch:
        raise BVHError(f"{path}: {values.size} motion values, expected {n_frames} x {n_ch}")
    data = values.reshape(n_frames, n_ch)

    N = len(names)
    rot = np.broadcast_to(np.eye(3), (n_frames, N, 3, 3)).copy()
    root_t = np.zeros((n_frames, 3))
    col = 0
    for j, ch in enumerate(channels):
        rot_cols = [(col + k, c) for k, c in enumerate(ch) if c in _ROT]
        for k, c in enumerate(ch):
            if c in _POS and parents[j] < 0:
                root_t[:, _POS[c]] = data[:, col + k]
        if rot_cols:
            order = "".join(_ROT[c] for _, c in rot_cols)
            angles = data[:, [i for i, _ in rot_cols]]
            rot[:, j] = Rotation.from_euler(order, angles, degrees=True).as_matrix()
        col += len(ch)
    offs = np.array(offsets, dtype=np.float64)
    # Root position channels replace the root offset (common practice); keep the offset out of FK.
    if any(c in _POS for c in channels[0]):
        offs[0] = 0.0
    fps = 1.0 / frame_time if frame_time > 0 else 30.0
    return SourceClip(names=names, parents=np.array(parents), offsets=offs, rotations=rot,
                      root_translation=root_t, fps=fps, path=path,
                      has_data=np.array([len(c) > 0 for c in channels]))


def load_bvh(path: str | Path) -> SourceClip:
    p = Path(path)
    return parse_bvh(p.read_text(encoding="utf-8", errors="replace"), str(p))
