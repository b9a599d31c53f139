"""Protocol messages, error-code documentation, and the result file format."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engine import skeleton as sk
from engine.errors import EXIT_CODES, Cancelled
from engine.protocol import Protocol, parse_line
from engine.result import FIELDS, ResultFormatError, read_result, validate, write_result

ROOT = Path(__file__).resolve().parents[1]


def test_documented_exit_codes_match_the_code():
    doc = (ROOT / "docs" / "protocol.md").read_text()
    rows = dict((code, int(num)) for num, code in re.findall(r"^\| (\d+) \| `(\w+)` \|", doc, re.M))
    assert rows == EXIT_CODES


def test_protocol_lines_rate_limit_and_cancel():
    buf = io.StringIO()
    p = Protocol(buf, max_rate=1000.0)
    p.start(engine_version="x", device="cpu", video="v.mp4", out="o.npz")
    p.progress("pose", 0, 10, force=True)
    p2 = Protocol(io.StringIO(), max_rate=0.001)  # at most one message per 1000 s per stage
    for i in range(50):
        p2.progress("pose", i, 100)
    assert len(p2._out.getvalue().splitlines()) == 1
    p2.progress("pose", 100, 100)  # the last one always goes out
    assert len(p2._out.getvalue().splitlines()) == 2
    p.warning("moving_camera", "the camera moves")
    p.request_cancel()
    with pytest.raises(Cancelled):
        p.progress("pose", 1, 10)
    p.error("cancelled", "Cancelled by the user.", 130)
    p.done(False, 130)
    msgs = [parse_line(line) for line in buf.getvalue().splitlines()]
    assert [m["type"] for m in msgs] == ["start", "progress", "warning", "error", "done"]
    assert msgs[-1] == {"type": "done", "ok": False, "exit_code": 130, "cancelled": True}
    with pytest.raises(AssertionError):
        p.emit("log", text="not in the vocabulary")
    with pytest.raises(ValueError):
        parse_line(json.dumps({"type": "hello"}))


def make_result(T: int = 5, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    R = Rotation.random(T * sk.J, random_state=seed).as_matrix().reshape(T, sk.J, 3, 3)
    root = rng.normal(0, 1, (T, 3))
    _, P = sk.forward_kinematics(R, root, sk.DEFAULT_REST_OFFSETS)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat().reshape(T, sk.J, 4)[..., [3, 0, 1, 2]]
    return {
        "engine_version": np.asarray("0.0.0"), "fps": np.asarray(30.0), "times": np.arange(T) / 30.0,
        "frame_index": np.arange(T), "valid": np.ones(T, bool), "joint_names": np.asarray(sk.JOINT_NAMES),
        "parents": np.asarray(sk.PARENTS, np.int32), "rest_offsets": sk.DEFAULT_REST_OFFSETS.astype(np.float32),
        "rotations": q.astype(np.float32), "root_translation": root.astype(np.float32),
        "joints_world": P.astype(np.float32), "joint_confidence": np.ones((T, sk.J), np.float32),
        "image_size": np.asarray([640, 480], np.int32), "camera_intrinsics": np.eye(3, dtype=np.float32),
        "camera_extrinsics": np.repeat(np.eye(4, dtype=np.float32)[None], T, 0),
        "camera_static": np.asarray(True), "body_model": np.asarray("anny"),
        "shape_names": np.asarray(["height"]), "shape_params": np.asarray([0.5], np.float32),
        "body_height": np.asarray(1.7, np.float32), "contact_names": np.asarray(sk.CONTACT_JOINTS),
        "foot_contacts": np.zeros((T, 4), bool), "landmarks_image": np.zeros((T, 33, 3), np.float32),
        "landmarks_world": np.zeros((T, 33, 3), np.float32), "landmarks_visibility": np.zeros((T, 33), np.float32),
        "video_path": np.asarray("clip.mp4"), "video_size": np.asarray([640, 480], np.int32),
        "video_fps": np.asarray(30.0), "video_rotation": np.asarray(0, np.int32),
        "video_duration": np.asarray(T / 30.0), "meta_json": np.asarray(json.dumps({"k": 1})),
    }


def test_result_round_trip_without_pickle(tmp_path):
    data = make_result()
    path = write_result(tmp_path / "r.npz", data)
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]  # no temporary file left
    back = read_result(path)
    assert set(back) == set(FIELDS)
    for k, v in data.items():
        np.testing.assert_array_equal(back[k], v)
    with np.load(path, allow_pickle=False) as z:  # plain numpy reads it too
        assert z["joint_names"].dtype.kind == "U"


def test_result_validation_lists_problems(tmp_path):
    data = make_result()
    data["joints_world"] = data["joints_world"][:, :5]
    del data["foot_contacts"]
    with pytest.raises(ResultFormatError) as e:
        write_result(tmp_path / "bad.npz", data)
    assert "joints_world" in str(e.value) and "foot_contacts" in str(e.value)
    assert list(tmp_path.iterdir()) == []  # nothing written
    obj = make_result()
    obj["meta_json"] = np.array([{"a": 1}], dtype=object)
    with pytest.raises(ResultFormatError):
        validate({**obj, "format": np.asarray("video_mocap.result"), "format_version": np.asarray(1)})


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        write_result(tmp_path / "r.npz", make_result())
    assert list(tmp_path.iterdir()) == []


def test_reader_refuses_newer_versions_and_garbage(tmp_path):
    data = make_result()
    data["format_version"] = np.asarray(99)
    np.savez(tmp_path / "future.npz", **data)
    with pytest.raises(ResultFormatError, match="newer"):
        read_result(tmp_path / "future.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ResultFormatError):
        read_result(tmp_path / "junk.npz")
