"""A stand-in for ``python -m engine`` speaking protocol v1 (docs/protocol.md), for add-on tests.

Run as ``python tests/fake_engine.py run VIDEO --out OUT.npz [...]`` (the add-on does this when
$VIDEO_MOCAP_ENGINE_MODULE points at this file). $FAKE_ENGINE_MODE picks the behaviour:
  ok        write a fixture result (``make_result``; $FAKE_ENGINE_FRAMES frames) and succeed
  error     report ``no_person`` and exit 6
  slow      report progress forever until a ``cancel`` line arrives (then exit 130)
  stubborn  like slow but ignores the cancel line (the add-on must terminate it)
  deaf      like stubborn and also ignores SIGTERM (the add-on must kill it)
  crash     write a traceback to stderr and exit 1 without ``done``
  garbage   succeed but write a file that is not a result
  hang      say ``start`` and then nothing, ignoring cancel and SIGTERM (only SIGKILL ends it)
With $FAKE_ENGINE_CHECK_VIDEO=1, like the real engine, a video path that is not a file (e.g. one
relative to another folder) is an error.
$FAKE_ENGINE_RESULT (mode ok): copy this file as the result instead of making one.
Also ``check --json`` and ``--version``. Importable: ``make_result`` builds fixture files.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np



def make_result(path: str | os.PathLike, frames: int = 48, seed: int = 0, fps: float = 24.0) -> dict:
    """Write a valid result file with plausible, smooth random motion; returns the arrays written."""
    from scipy.spatial.transform import Rotation

    from engine import skeleton
    from engine.result import write_result

    rng = np.random.default_rng(seed)
    J, T = skeleton.J, frames
    t = np.arange(T) / fps
    axes = rng.normal(size=(J, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    amp = rng.uniform(0.1, 0.7, size=J)
    phase = rng.uniform(0, 2 * np.pi, size=J)
    angle = amp[None] * np.sin(2 * np.pi * 0.8 * t[:, None] + phase[None])            # (T, J)
    rotvec = angle[..., None] * axes[None]                                              # (T, J, 3)
    rotvec[:, 0] += np.array([0.0, 0.0, 1.0]) * (0.8 * t)[:, None]                       # root turns
    R = Rotation.from_rotvec(rotvec.reshape(-1, 3))
    mats = R.as_matrix().reshape(T, J, 3, 3)
    quat = R.as_quat(scalar_first=True).reshape(T, J, 4)                                # wxyz
    for k in range(1, T):                                                               # continuity
        quat[k][np.sum(quat[k] * quat[k - 1], axis=-1) < 0] *= -1
    scale = 1.0 + 0.05 * rng.normal()
    rest = skeleton.DEFAULT_REST_OFFSETS * scale
    trans = np.stack([0.2 * np.sin(t), -1.2 * t, rest[0, 2] + 0.02 * np.sin(6 * t)], axis=1)
    _, joints = skeleton.forward_kinematics(mats, trans, rest)
    n_cont = len(skeleton.CONTACT_JOINTS)
    data = {
        "engine_version": "fake", "fps": fps, "times": t, "frame_index": np.arange(T),
        "valid": np.ones(T, bool), "joint_names": np.array(skeleton.JOINT_NAMES),
        "parents": np.array(skeleton.PARENTS), "rest_offsets": rest, "rotations": quat,
        "root_translation": trans, "joints_world": joints, "joint_confidence": np.ones((T, J)),
        "image_size": np.array([640, 480]), "camera_intrinsics": np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]),
        "camera_extrinsics": np.tile(np.eye(4), (T, 1, 1)), "camera_static": np.array(True),
        "body_model": "anny", "shape_names": np.array(["height"]), "shape_params": np.array([0.5]),
        "body_height": 1.7 * scale, "contact_names": np.array(skeleton.CONTACT_JOINTS),
        "foot_contacts": np.zeros((T, n_cont), bool), "landmarks_image": np.zeros((T, 33, 3)),
        "landmarks_world": np.zeros((T, 33, 3)), "landmarks_visibility": np.ones((T, 33)),
        "video_path": "fake.mp4", "video_size": np.array([640, 480]), "video_fps": fps,
        "video_rotation": 0, "video_duration": T / fps, "meta_json": "{}",
    }
    write_result(path, data)
    return data


def _emit(**msg) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def _run(argv: list[str]) -> int:
    video = argv[0]
    out = argv[argv.index("--out") + 1]
    mode = os.environ.get("FAKE_ENGINE_MODE", "ok")
    if os.environ.get("FAKE_ENGINE_ARGV"):          # tests read back the arguments the add-on built
        Path(os.environ["FAKE_ENGINE_ARGV"]).write_text(json.dumps(argv), encoding="utf-8")
    cancel = threading.Event()

    def watch() -> None:
        for line in sys.stdin:
            if line.strip() == "cancel":
                cancel.set()
                return

    threading.Thread(target=watch, daemon=True).start()
    if os.environ.get("FAKE_ENGINE_CHECK_VIDEO") == "1" and not os.path.isfile(video):
        _emit(type="error", code="input_not_found", message=f"The video file '{video}' does not exist.",
              exit_code=3)
        _emit(type="done", ok=False, exit_code=3, cancelled=False)
        return 3
    _emit(type="start", protocol=1, engine_version="fake", device="cpu", video=video, out=out)
    if mode == "deaf":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # before the first message: the test waits for one
    if mode == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    if mode in ("slow", "stubborn", "deaf"):
        i = 0
        while not (cancel.is_set() and mode == "slow"):
            _emit(type="progress", stage="pose", frame=i, total=1000, fraction=i / 1000)
            i += 1
            time.sleep(0.05)
        _emit(type="error", code="cancelled", message="Cancelled by the user.", exit_code=130)
        _emit(type="done", ok=False, exit_code=130, cancelled=True)
        return 130
    if mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: boom in the fake engine", file=sys.stderr)
        return 1
    if mode == "error":
        _emit(type="error", code="no_person", message="No person was found in the video.", exit_code=6)
        _emit(type="done", ok=False, exit_code=6, cancelled=False)
        return 6
    frames = int(os.environ.get("FAKE_ENGINE_FRAMES", "48"))
    for i in range(0, frames + 1, 8):
        _emit(type="progress", stage="pose", frame=min(i, frames), total=frames, fraction=min(i, frames) / frames)
    if mode == "garbage":
        Path(out).write_bytes(b"not a zip")
    elif os.environ.get("FAKE_ENGINE_RESULT"):    # hand over a prepared (possibly hostile) result file
        Path(out).write_bytes(Path(os.environ["FAKE_ENGINE_RESULT"]).read_bytes())
    else:
        make_result(out, frames=frames, seed=int(os.environ.get("FAKE_ENGINE_SEED", "0")))
    _emit(type="result", path=out, frames=frames, fps=24.0, duration=frames / 24.0)
    _emit(type="done", ok=True, exit_code=0, cancelled=False)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print("engine fake")
        return 0
    if argv[:1] == ["check"]:
        print(json.dumps({"ok": True, "engine_version": "fake", "device": "cpu", "message": "Fake engine ready"}))
        return 0
    if argv[:1] == ["run"]:
        return _run(argv[1:])
    print(f"fake engine: bad arguments {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
