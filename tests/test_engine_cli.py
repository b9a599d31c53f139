"""The engine as a subprocess: the protocol stream of a real run, cancellation, and bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import EXIT_CODES
from engine.protocol import MESSAGE_TYPES, parse_line
from engine.result import read_result
from media import make_audio, make_clip

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "engine" / "data" / "sample_walk.mp4"


def engine_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


def run_engine(*args: str, timeout: float = 300) -> tuple[int, list[dict], str]:
    p = subprocess.run(engine_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    msgs = [parse_line(line) for line in p.stdout.splitlines()]  # every stdout line is a protocol message
    return p.returncode, msgs, p.stderr


def assert_clean_failure(code: int, msgs: list[dict], err_code: str, out_dir: Path) -> dict:
    assert code == EXIT_CODES[err_code], (code, msgs)
    errors = [m for m in msgs if m["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == err_code and errors[0]["exit_code"] == code
    assert errors[0]["message"] and "Traceback" not in errors[0]["message"]
    assert msgs[-1] == {"type": "done", "ok": False, "exit_code": code, "cancelled": code == 130}
    assert not [p for p in out_dir.iterdir() if p.suffix in (".npz", ".tmp") or ".npz." in p.name], \
        list(out_dir.iterdir())
    return errors[0]


def test_version_and_help():
    from engine import __version__

    p = subprocess.run(engine_cmd("--version"), cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and __version__ in p.stdout.split() and re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    p = subprocess.run(engine_cmd("--help"), cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and "run" in p.stdout and "check" in p.stdout, p.stdout
    p = subprocess.run(engine_cmd("run", "--help"), cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = p.stdout + p.stderr  # `run` keeps stdout for protocol messages: its help may go to stderr
    # the options the README and the add-on use
    for opt in ("--out", "--device", "--start-frame", "--end-frame", "--fps", "--focal", "--fov", "--camera"):
        assert opt in text, (opt, text)


def test_check_json_reports_environment():
    p = subprocess.run(engine_cmd("check", "--json"), cwd=ROOT, capture_output=True, text=True, timeout=120)
    report = json.loads(p.stdout)
    assert report["ok"] is True and p.returncode == 0, report
    assert report["device"] in ("cpu", "cuda") and report["pose_model"] == "ok"
    assert report["mediapipe"] == "0.10.21"


@pytest.mark.skipif(not SAMPLE.exists(), reason="sample video not generated")
def test_real_run_protocol_stream_and_result(tmp_path):
    out = tmp_path / "r.npz"
    code, msgs, err = run_engine("run", str(SAMPLE), "--out", str(out), "--device", "cpu")
    assert code == 0, err[-2000:]
    types = [m["type"] for m in msgs]
    assert set(types) <= MESSAGE_TYPES
    assert types[0] == "start" and msgs[0]["protocol"] == 1 and msgs[0]["device"] == "cpu"
    assert types[-2:] == ["result", "done"] and msgs[-1]["ok"] is True
    stages = [m["stage"] for m in msgs if m["type"] == "progress"]
    assert stages.index("pose") < stages.index("solve") < stages.index("trajectory") < stages.index("write")
    for stage in set(stages):  # per stage, progress never goes backwards
        frames = [m["frame"] for m in msgs if m["type"] == "progress" and m["stage"] == stage]
        assert frames == sorted(frames)
    res = read_result(out)  # validates every field, allow_pickle=False
    with np.load(out, allow_pickle=False) as z:
        assert z["joints_world"].shape == res["joints_world"].shape
    T = len(res["times"])
    assert msgs[-2]["frames"] == T and T >= 90
    jw = res["joints_world"]
    names = list(res["joint_names"])
    feet = jw[:, [names.index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]]
    # the walker stands on the ground: the lowest foot joint (ankle or ball of the foot, which sit 2-8 cm
    # above the sole) stays near the ground, and the head is above 1.3 m
    assert -0.02 < np.median(feet[..., 2].min(1)) < 0.08
    assert np.median(jw[:, names.index("head"), 2]) > 1.3
    assert res["foot_contacts"].any()
    # the rotations are unit quaternions and their FK reproduces joints_world
    from engine import skeleton as sk
    from scipy.spatial.transform import Rotation

    q = res["rotations"].astype(np.float64)
    assert np.allclose(np.linalg.norm(q, axis=-1), 1, atol=1e-4)
    R = Rotation.from_quat(q.reshape(-1, 4)[:, [1, 2, 3, 0]]).as_matrix().reshape(T, -1, 3, 3)
    _, P = sk.forward_kinematics(R, res["root_translation"].astype(np.float64), res["rest_offsets"].astype(np.float64))
    assert np.abs(P - jw).max() < 1e-3


@pytest.mark.skipif(not SAMPLE.exists(), reason="sample video not generated")
@pytest.mark.parametrize("how", ["stdin", "sigterm"])
def test_cancel_mid_run_leaves_no_file(tmp_path, how):
    out = tmp_path / "r.npz"
    p = subprocess.Popen(engine_cmd("run", str(SAMPLE), "--out", str(out)), cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    msgs = []
    t_cancel = None
    for line in p.stdout:
        m = parse_line(line)
        msgs.append(m)
        if t_cancel is None and m["type"] == "progress" and m["stage"] == "pose" and m["frame"] >= 5:
            t_cancel = time.monotonic()
            if how == "stdin":
                p.stdin.write("cancel\n")
                p.stdin.flush()
            else:
                p.send_signal(signal.SIGTERM)
    code = p.wait(timeout=30)
    elapsed = time.monotonic() - t_cancel
    assert t_cancel is not None
    assert code == 130 and msgs[-1]["cancelled"] is True
    assert elapsed < 3.0  # "within a second" of work; generous for a loaded 2-core CI machine
    assert_clean_failure(code, msgs, "cancelled", tmp_path)


def test_missing_file(tmp_path):
    code, msgs, _ = run_engine("run", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "r.npz"))
    e = assert_clean_failure(code, msgs, "input_not_found", tmp_path)
    assert "nope.mp4" in e["message"]


def test_not_a_video(tmp_path):
    f = tmp_path / "notes.mp4"
    f.write_text("this is not a video\n" * 50)
    code, msgs, _ = run_engine("run", str(f), "--out", str(tmp_path / "r.npz"))
    assert_clean_failure(code, msgs, "invalid_video", tmp_path)


def test_audio_only(tmp_path):
    f = make_audio(tmp_path / "voice.m4a")
    code, msgs, _ = run_engine("run", str(f), "--out", str(tmp_path / "r.npz"))
    assert_clean_failure(code, msgs, "no_frames", tmp_path)


def test_no_person(tmp_path):
    f = make_clip(tmp_path / "empty_room.mp4", n=8, size=(160, 120))
    code, msgs, _ = run_engine("run", str(f), "--out", str(tmp_path / "r.npz"))
    e = assert_clean_failure(code, msgs, "no_person", tmp_path)
    assert "No person" in e["message"]


def test_output_folder_missing(tmp_path):
    f = make_clip(tmp_path / "c.mp4", n=4)
    code, msgs, _ = run_engine("run", str(f), "--out", str(tmp_path / "missing" / "r.npz"))
    assert_clean_failure(code, msgs, "output_not_writable", tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root, which ignores folder permissions: "
                    "the read-only output folder case is NOT tested here")
def test_output_folder_read_only(tmp_path):
    f = make_clip(tmp_path / "c.mp4", n=4)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    code, msgs, _ = run_engine("run", str(f), "--out", str(ro / "r.npz"))
    assert_clean_failure(code, msgs, "output_not_writable", ro)


def test_huge_resolution(tmp_path):
    f = make_clip(tmp_path / "wide.mkv", n=2, size=(8200, 16), codec="ffv1", pix_fmt="yuv420p")
    code, msgs, _ = run_engine("run", str(f), "--out", str(tmp_path / "r.npz"))
    assert_clean_failure(code, msgs, "video_too_large", tmp_path)


def test_bad_arguments_are_reported_in_protocol(tmp_path):
    code, msgs, _ = run_engine("run", "x.mp4", "--out", str(tmp_path / "r.npz"), "--device", "tpu")
    assert_clean_failure(code, msgs, "usage", tmp_path)


def test_cuda_requested_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    f = make_clip(tmp_path / "c.mp4", n=4)
    code, msgs, _ = run_engine("run", str(f), "--out", str(tmp_path / "r.npz"), "--device", "cuda")
    assert_clean_failure(code, msgs, "device_unavailable", tmp_path)
