"""ASF/AMC reader (Acclaim skeleton + motion; CMU and HDM05 use it).

ASF bones are segments: each has a rest ``direction`` (world axes), a ``length`` and an ``axis`` (Euler
angles, in the given order, of the bone's local frame). An AMC frame gives each bone's rotation ``M`` in
that local frame, so in world-aligned axes the bone's local rotation is ``L = C @ M @ C^-1``. Euler
angles use scipy's extrinsic convention: axis order "XYZ" means ``R = Rz @ Ry @ Rx``.

The output is a :class:`SourceClip` with one joint per bone placed at the bone's *start* (the root at
the root position), so ``clip.names`` are the ASF bone names and a bone's end is its child's head (or
the ``<bone>_end`` site for leaf bones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .source import SourceClip


class ASFError(ValueError):
    pass


def _euler(order: str, angles: np.ndarray) -> np.ndarray:
    return Rotation.from_euler(order.lower(), angles, degrees=True).as_matrix()


def parse_asf(text: str) -> dict:
    """Returns a dict: bones {name: {direction, length, axis (3x3), dof [..]}}, hierarchy {parent: [children]},
    root {order, axis (3x3), position}, length_unit, angle_deg."""
    sections: dict[str, list[str]] = {}
    cur = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(":"):
            parts = line[1:].split(None, 1)
            cur = parts[0].lower()
            sections.setdefault(cur, [])
            if len(parts) > 1:
                sections[cur].append(parts[1])
            continue
        if cur is not None:
            sections[cur].append(line)
    units = {l.split()[0]: l.split()[1] for l in sections.get("units", []) if len(l.split()) >= 2}
    angle_deg = units.get("angle", "deg").lower().startswith("deg")
    root: dict = {"order": ["TX", "TY", "TZ", "RX", "RY", "RZ"], "axis_order": "XYZ",
                  "position": np.zeros(3), "orientation": np.zeros(3)}
    for l in sections.get("root", []):
        w = l.split()
        if w[0] == "order":
            root["order"] = [x.upper() for x in w[1:]]
        elif w[0] == "axis":
            root["axis_order"] = w[1].upper()
        elif w[0] == "position":
            root["position"] = np.array([float(x) for x in w[1:4]])
        elif w[0] == "orientation":
            root["orientation"] = np.array([float(x) for x in w[1:4]])
    bones: dict[str, dict] = {}
    b: dict | None = None
    for l in sections.get("bonedata", []):
        w = l.split()
        if w[0] == "begin":
            b = {"dof": [], "direction": np.zeros(3), "length": 0.0, "axis": np.zeros(3), "axis_order": "XYZ"}
        elif w[0] == "end":
            assert b is not None
            bones[b["name"]] = b
            b = None
        elif b is None:
            continue
        elif w[0] == "name":
            b["name"] = w[1]
        elif w[0] == "direction":
            b["direction"] = np.array([float(x) for x in w[1:4]])
        elif w[0] == "length":
            b["length"] = float(w[1])
        elif w[0] == "axis":
            b["axis"] = np.array([float(x) for x in w[1:4]])
            b["axis_order"] = w[4].upper() if len(w) > 4 else "XYZ"
        elif w[0] == "dof":
            b["dof"] = [x.lower() for x in w[1:]]
    hierarchy: dict[str, list[str]] = {}
    for l in sections.get("hierarchy", []):
        w = l.split()
        if w[0] in ("begin", "end"):
            continue
        hierarchy.setdefault(w[0], []).extend(w[1:])
    if "root" not in hierarchy:
        raise ASFError("ASF has no hierarchy for 'root'")
    return {"bones": bones, "hierarchy": hierarchy, "root": root, "angle_deg": angle_deg,
            "length_unit": float(units.get("length", 1.0))}


def parse_amc(text: str) -> list[dict[str, list[float]]]:
    frames: list[dict[str, list[float]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith(":"):
            continue
        w = line.split()
        if len(w) == 1 and w[0].isdigit():
            frames.append({})
            continue
        if frames:
            frames[-1][w[0]] = [float(x) for x in w[1:]]
    return frames


def asf_amc_to_clip(asf: dict, frames: list[dict[str, list[float]]], fps: float, path: str = "") -> SourceClip:
    bones, hier, root = asf["bones"], asf["hierarchy"], asf["root"]
    names = ["root"]
    parents = [-1]
    offsets = [root["position"].copy()]
    order_q = ["root"]
    while order_q:  # breadth-first: parents come first
        parent = order_q.pop(0)
        for child in hier.get(parent, []):
            if child not in bones:
                raise ASFError(f"hierarchy names unknown bone {child!r}")
            names.append(child)
            parents.append(names.index(parent))
            pb = bones.get(parent)
            offsets.append(np.zeros(3) if pb is None else pb["direction"] * pb["length"])
            order_q.append(child)
    # end sites for leaf bones
    for name in list(names[1:]):
        if not hier.get(name):
            names.append(f"{name}_end")
            parents.append(names.index(name))
            offsets.append(bones[name]["direction"] * bones[name]["length"])
    N, T = len(names), len(frames)
    rot = np.broadcast_to(np.eye(3), (T, N, 3, 3)).copy()
    root_t = np.zeros((T, 3))
    has_data = np.zeros(N, bool)
    scale = 1.0 if asf["angle_deg"] else 180.0 / np.pi
    # root
    C = _euler(root["axis_order"], root["orientation"])
    vals = np.array([f.get("root", [0.0] * 6) for f in frames], dtype=np.float64)  # (T, 6)
    rcols = {ch: i for i, ch in enumerate(root["order"])}
    for k, ch in enumerate(("TX", "TY", "TZ")):
        if ch in rcols:
            root_t[:, k] = vals[:, rcols[ch]]
    ang = np.stack([vals[:, rcols[c]] if c in rcols else np.zeros(T) for c in ("RX", "RY", "RZ")], -1) * scale
    M = _euler("XYZ", ang)  # rotation channel values are given per axis; applied X then Y then Z
    rot[:, 0] = C @ M @ C.T
    has_data[0] = True
    for j, name in enumerate(names):
        if j == 0 or name not in bones:
            continue
        b = bones[name]
        if not b["dof"]:
            continue
        has_data[j] = True
        ang = np.zeros((T, 3))
        for t, f in enumerate(frames):
            v = f.get(name)
            if v is None:
                continue
            for k, d in enumerate(b["dof"]):
                if d in ("rx", "ry", "rz") and k < len(v):
                    ang[t, "xyz".index(d[1])] = v[k]
        C = _euler(b["axis_order"], b["axis"])
        rot[:, j] = C @ _euler("XYZ", ang * scale) @ C.T
    return SourceClip(names=names, parents=np.array(parents), offsets=np.array(offsets, dtype=np.float64),
                      rotations=rot, root_translation=root_t, fps=fps, path=path, has_data=has_data)


def load_asf_amc(asf_path: str | Path, amc_path: str | Path, fps: float = 30.0) -> SourceClip:
    asf = parse_asf(Path(asf_path).read_text(encoding="utf-8", errors="replace"))
    frames = parse_amc(Path(amc_path).read_text(encoding="utf-8", errors="replace"))
    return asf_amc_to_clip(asf, frames, fps, str(amc_path))
