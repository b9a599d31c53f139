"""Hostile result files for reliability tests (issue #8): each mutation takes a valid result's arrays
and returns a broken (or near-valid) variant; ``write_raw`` writes arrays without any validation."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

Arrays = dict[str, np.ndarray]


def load(path: str | Path) -> Arrays:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_raw(path: str | Path, arrays: Arrays) -> Path:
    """np.savez without the engine's validation (numeric and string arrays only: never pickles)."""
    for k, a in arrays.items():
        assert np.asarray(a).dtype.kind != "O", k
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def with_member_header(path: str | Path, arrays: Arrays, name: str, shape: tuple[int, ...],
                       dtype: str = "<f8") -> Path:
    """A zip whose member ``name`` has an .npy header declaring ``shape`` but holds only 16 bytes of data."""
    write_raw(path, {k: v for k, v in arrays.items() if k != name})
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(name + ".npy", b"\x93NUMPY" + buf.getvalue()[6:] + b"\x00" * 16)
    return Path(path)


def _names(a: Arrays, fn: Callable[[list[str]], list[str]]) -> Arrays:
    names = fn([str(n) for n in a["joint_names"]])
    return {**a, "joint_names": np.array(names)}


def _set(a: Arrays, key: str, value) -> Arrays:
    return {**a, key: np.asarray(value)}


def _q(a: Arrays, fn) -> Arrays:
    q = a["rotations"].astype(np.float64).copy()
    fn(q)
    return {**a, "rotations": q}


def _nan_at(a: Arrays, key: str, index) -> Arrays:
    v = a[key].astype(np.float64).copy()
    v[index] = np.nan
    return {**a, key: v}


def with_mesh(a: Arrays) -> Arrays:
    """``a`` with a small valid body mesh: a box around the pelvis, skinned half to joints 0 and 1."""
    v = np.array([[x, y, z] for x in (-0.1, 0.1) for y in (-0.1, 0.1) for z in (0.8, 1.1)], np.float32)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int32)
    return {**a, "mesh_vertices": v, "mesh_faces": f, "mesh_weight_joints": np.tile(np.int32([0, 1]), (8, 1)),
            "mesh_weights": np.full((8, 2), 0.5, np.float32)}


def _mesh_set(a: Arrays, key: str, fn) -> Arrays:
    m = with_mesh(a)
    m[key] = fn(m[key].copy())
    return m


def _put(v: np.ndarray, index, value) -> np.ndarray:
    v = v.astype(np.float64) if isinstance(value, float) else v
    v[index] = value
    return v


# name -> mutation; every one of these must be refused with a clear message
REFUSED: dict[str, Callable[[Arrays], Arrays]] = {
    "nan_times": lambda a: _nan_at(a, "times", 3),
    "huge_times": lambda a: _set(a, "times", a["times"] * 1e12),
    "inf_times": lambda a: _set(a, "times", np.where(np.arange(len(a["times"])) == 5, np.inf, a["times"])),
    "decreasing_times": lambda a: _set(a, "times", a["times"][::-1].copy()),
    "repeated_times": lambda a: _set(a, "times", np.zeros_like(a["times"])),
    "long_joint_name": lambda a: _names(a, lambda n: [n[0] + "x" * 75] + n[1:]),
    "empty_joint_name": lambda a: _names(a, lambda n: [""] + n[1:]),
    "duplicate_joint_name": lambda a: _names(a, lambda n: [n[0], n[0]] + n[2:]),
    "zero_quaternions": lambda a: _set(a, "rotations", np.zeros_like(a["rotations"])),
    "one_zero_quaternion": lambda a: _q(a, lambda q: q.__setitem__((2, 4), 0.0)),
    "doubled_quaternions": lambda a: _set(a, "rotations", a["rotations"] * 2.0),
    "nan_quaternion": lambda a: _nan_at(a, "rotations", (1, 3, 0)),
    "inf_translation": lambda a: _set(a, "root_translation", np.full_like(a["root_translation"], np.inf)),
    "far_translation": lambda a: _set(a, "root_translation", a["root_translation"] + 1e9),
    "nan_rest": lambda a: _nan_at(a, "rest_offsets", (2, 1)),
    "nan_fps": lambda a: _set(a, "fps", np.nan),
    "zero_fps": lambda a: _set(a, "fps", 0.0),
    "huge_fps": lambda a: _set(a, "fps", 1e9),
    "fps_array": lambda a: _set(a, "fps", np.array([24.0, 25.0])),
    "string_fps": lambda a: _set(a, "fps", "fast"),
    "complex_rotations": lambda a: _set(a, "rotations", a["rotations"].astype(np.complex64)),
    "string_rotations": lambda a: _set(a, "rotations", a["rotations"].astype(str)),
    "bool_parents": lambda a: _set(a, "parents", a["parents"] > 0),
    "cyclic_parents": lambda a: _set(a, "parents", np.where(np.arange(len(a["parents"])) == 3, 5, a["parents"])),
    "parent_out_of_range": lambda a: _set(a, "parents", np.where(np.arange(len(a["parents"])) == 3, 999, a["parents"])),
    "short_rotations": lambda a: _set(a, "rotations", a["rotations"][:-1]),
    "transposed_translation": lambda a: _set(a, "root_translation", a["root_translation"].T.copy()),
    "no_frames": lambda a: {**a, **{k: a[k][:0] for k in ("times", "rotations", "root_translation", "joints_world")}},
    "times_2d": lambda a: _set(a, "times", a["times"][:, None]),
    "format_array": lambda a: _set(a, "format", np.array(["video_mocap.result"] * 2)),
    "format_version_array": lambda a: _set(a, "format_version", np.array([1, 1])),
    "newer_version": lambda a: _set(a, "format_version", 99),
    "wrong_format": lambda a: _set(a, "format", "something.else"),
    "missing_rotations": lambda a: {k: v for k, v in a.items() if k != "rotations"},
    "structured_times": lambda a: _set(a, "times", np.zeros(len(a["times"]), dtype=[("t", "<f8")])),
    # the body mesh (all four members or none, indices in range, weights summing to 1)
    "mesh_incomplete": lambda a: {**a, "mesh_vertices": np.zeros((10, 3), np.float32)},
    "mesh_face_out_of_range": lambda a: _mesh_set(a, "mesh_faces", lambda v: _put(v, (3, 1), 8)),
    "mesh_face_negative": lambda a: _mesh_set(a, "mesh_faces", lambda v: _put(v, (0, 0), -1)),
    "mesh_face_degenerate": lambda a: _mesh_set(a, "mesh_faces", lambda v: _put(v, (0, 1), v[0, 0])),
    "mesh_quads_as_floats": lambda a: _mesh_set(a, "mesh_faces", lambda v: v.astype(np.float32)),
    "mesh_faces_flat": lambda a: _mesh_set(a, "mesh_faces", lambda v: v.reshape(-1)),
    "mesh_joint_out_of_range": lambda a: _mesh_set(a, "mesh_weight_joints", lambda v: _put(v, (2, 1), 24)),
    "mesh_weights_negative": lambda a: _mesh_set(a, "mesh_weights", lambda v: v * np.float32([2.0, -1.0])),
    "mesh_weights_not_normalised": lambda a: _mesh_set(a, "mesh_weights", lambda v: v * 3),
    "mesh_weights_nan": lambda a: _mesh_set(a, "mesh_weights", lambda v: _put(v, (1, 1), np.nan)),
    "mesh_weights_short": lambda a: _mesh_set(a, "mesh_weights", lambda v: v[:-1]),
    "mesh_vertex_inf": lambda a: _mesh_set(a, "mesh_vertices", lambda v: _put(v, (5, 2), np.inf)),
    "mesh_vertices_far": lambda a: _mesh_set(a, "mesh_vertices", lambda v: v + 1e9),
    "mesh_vertices_2d": lambda a: _mesh_set(a, "mesh_vertices", lambda v: v[:, :2].copy()),
    "mesh_string_vertices": lambda a: _mesh_set(a, "mesh_vertices", lambda v: v.astype(str)),
}

# near-valid: must import (normalised)
ACCEPTED: dict[str, Callable[[Arrays], Arrays]] = {
    "near_unit_quaternions": lambda a: _set(a, "rotations", a["rotations"] * 1.001),
    "float32_and_int64": lambda a: {**a, "rotations": a["rotations"].astype(np.float32),
                                    "parents": a["parents"].astype(np.int64)},
    "one_frame": lambda a: {**a, **{k: a[k][:1] for k in ("times", "rotations", "root_translation", "joints_world")}},
    "junk_member": lambda a: {**a, "junk_unknown": np.zeros(1000, np.uint8)},
    "small_mesh": with_mesh,
    "mesh_int64_float64": lambda a: {**with_mesh(a), "mesh_faces": with_mesh(a)["mesh_faces"].astype(np.int64),
                                     "mesh_weights": with_mesh(a)["mesh_weights"].astype(np.float64)},
}


def fuzz_arrays(a: Arrays, rng: np.random.Generator) -> Arrays:
    """One random array-level mutation: NaN/inf, scaled values, shapes, dtypes, sizes."""
    a = dict(a)
    key = str(rng.choice(sorted(a)))
    v = np.asarray(a[key])
    op = int(rng.integers(0, 9))
    if op == 0 and v.dtype.kind == "f" and v.size:
        v = v.copy()
        v.flat[int(rng.integers(0, v.size))] = rng.choice([np.nan, np.inf, -np.inf, 1e300])
    elif op == 1 and v.ndim:
        v = v[: int(rng.integers(0, v.shape[0] + 1))]                          # fewer rows
    elif op == 2 and v.ndim:
        v = np.concatenate([v, v[:1]]) if len(v) else v                       # one more row
    elif op == 3:
        v = v.reshape(-1)                                                     # flattened
    elif op == 4:
        v = v.astype(str)                                                     # strings
    elif op == 5 and v.dtype.kind in "fiu":
        v = v * rng.choice([0.0, -1.0, 2.0, 1e12])                             # scaled
    elif op == 6:
        a.pop(key)                                                            # missing
        return a
    elif op == 7 and v.dtype.kind in "fiu":
        v = v.astype(rng.choice(["<i2", "<f2", "<u1", "<c8", "?"]))          # other dtypes
    else:
        v = np.asarray(rng.normal(size=tuple(int(rng.integers(0, 4)) for _ in range(int(rng.integers(0, 3))))))
    a[key] = v
    return a


def fuzz_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    """One random byte-level mutation: flips, truncation, a zeroed block, an inserted block."""
    b = bytearray(raw)
    op = int(rng.integers(0, 4))
    if op == 0:
        for _ in range(int(rng.integers(1, 20))):
            b[int(rng.integers(0, len(b)))] ^= int(rng.integers(1, 256))
    elif op == 1:
        b = b[: int(rng.integers(0, len(b)))]
    elif op == 2:
        i, n = int(rng.integers(0, len(b))), int(rng.integers(1, 4096))
        b[i:i + n] = bytes(len(b[i:i + n]))
    else:
        i = int(rng.integers(0, len(b)))
        b[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 512)), dtype=np.uint8))
    return bytes(b)


def patch_zip_sizes(raw: bytes, factor: int) -> bytes:
    """Multiply every local/central header's declared uncompressed size (a lying zip directory)."""
    b = bytearray(raw)
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = b.find(sig)
        while i >= 0:
            (size,) = struct.unpack_from("<I", b, i + off)
            struct.pack_into("<I", b, i + off, min(size * factor, 0xFFFFFFFE))
            i = b.find(sig, i + 4)
    return bytes(b)
