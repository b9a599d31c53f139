"""The add-on's pure half (addon/core) without Blender: rig maths, result reader, engine job."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]

from addon.core import engine as core_engine  # noqa: E402
from addon.core import rig  # noqa: E402
from addon.core.result import ResultError, read_result  # noqa: E402

FAKE = str(ROOT / "tests" / "fake_engine.py")
import fake_engine  # noqa: E402  (tests/ is on pytest.ini's pythonpath)


@pytest.fixture(scope="module")
def fixture_file(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("res") / "walk.npz"
    data = fake_engine.make_result(path, frames=30, seed=3)
    return path, data


def test_quat_helpers_match_scipy():
    rng = np.random.default_rng(0)
    a, b = Rotation.random(50, random_state=1), Rotation.random(50, random_state=2)
    qa, qb = a.as_quat(scalar_first=True), b.as_quat(scalar_first=True)
    np.testing.assert_allclose(rig.quat_to_matrix(rig.quat_mul(qa, qb)), (a * b).as_matrix(), atol=1e-12)
    v = rng.normal(size=(50, 3))
    np.testing.assert_allclose(rig.quat_rotate(qa, v), a.apply(v), atol=1e-12)


def test_bone_layout_tails_and_rolls(fixture_file):
    r = read_result(fixture_file[0])
    lay = rig.bone_layout(r.joint_names, r.parents, r.rest_offsets)
    idx = {n: i for i, n in enumerate(r.joint_names)}
    # pelvis points at spine1 (not a hip), spine3 at the neck, elbow at the wrist
    np.testing.assert_allclose(lay.tails[idx["pelvis"]], lay.heads[idx["spine1"]])
    np.testing.assert_allclose(lay.tails[idx["spine3"]], lay.heads[idx["neck"]])
    np.testing.assert_allclose(lay.tails[idx["left_elbow"]], lay.heads[idx["left_wrist"]])
    # leaves continue their parent's direction
    for leaf, parent in (("head", "neck"), ("left_hand", "left_wrist"), ("right_foot", "right_ankle")):
        d_leaf = lay.tails[idx[leaf]] - lay.heads[idx[leaf]]
        d_par = lay.heads[idx[leaf]] - lay.heads[idx[parent]]
        cos = d_leaf @ d_par / np.linalg.norm(d_leaf) / np.linalg.norm(d_par)
        assert cos > 0.999 and np.linalg.norm(d_leaf) >= rig.MIN_BONE_LENGTH
    assert np.all(np.linalg.norm(lay.tails - lay.heads, axis=1) >= rig.MIN_BONE_LENGTH)
    # legs roll their Z axis forward (-Y), arms up (+Z)
    np.testing.assert_array_equal(lay.z_axes[idx["left_knee"]], [0, -1, 0])
    np.testing.assert_array_equal(lay.z_axes[idx["left_elbow"]], [0, 0, 1])


def _rest_quats_like_blender(lay: rig.BoneLayout) -> np.ndarray:
    """Bone matrices as Blender builds them: Y along head->tail, Z rolled towards the hint."""
    out = []
    for h, t, z in zip(lay.heads, lay.tails, lay.z_axes):
        y = (t - h) / np.linalg.norm(t - h)
        x = np.cross(y, z)
        x /= np.linalg.norm(x)
        zz = np.cross(x, y)
        out.append(Rotation.from_matrix(np.stack([x, y, zz], axis=1)).as_quat(scalar_first=True))
    return np.array(out)


def test_pose_basis_reproduces_world_joints(fixture_file):
    """Final = EditBone * PoseBone evaluated in numpy gives back the file's joints_world."""
    r = read_result(fixture_file[0])
    lay = rig.bone_layout(r.joint_names, r.parents, r.rest_offsets)
    rest_q = _rest_quats_like_blender(lay)
    q_basis, loc = rig.pose_basis(r.rotations, r.root_translation, rest_q, lay.heads[0])
    heads = rig.posed_heads(q_basis, loc, rest_q, lay.heads, r.parents)
    assert np.abs(heads - r.joints_world).max() < 1e-9
    assert np.all(np.sum(q_basis[1:] * q_basis[:-1], axis=-1) >= 0)   # hemisphere continuity
    # the raw (unconverted) rotations would NOT work: the conversion matters
    wrong = rig.posed_heads(r.rotations, r.root_translation - lay.heads[0], rest_q, lay.heads, r.parents)
    assert np.abs(wrong - r.joints_world).max() > 0.05


def test_key_frames_and_fps():
    assert rig.scene_fps(29.97) == (30, pytest.approx(30 / 29.97))
    f = rig.key_frames(np.array([0.0, 1 / 30, 2 / 30, 0.1 + 1e-5]), 30.0, 1)
    np.testing.assert_array_equal(f, [1, 2, 3, 4])
    assert rig.key_frames(np.array([0.0, 0.05]), 30.0, 1)[1] == pytest.approx(2.5)


def test_reader_refuses_bad_files(tmp_path, fixture_file):
    with pytest.raises(ResultError, match="Not a readable"):
        (tmp_path / "x.npz").write_bytes(b"garbage")
        read_result(tmp_path / "x.npz")
    data = dict(np.load(fixture_file[0], allow_pickle=False))
    np.savez(tmp_path / "v2.npz", **{**data, "format_version": np.array(2)})
    with pytest.raises(ResultError, match="version 2"):
        read_result(tmp_path / "v2.npz")
    np.savez(tmp_path / "fmt.npz", **{**data, "format": np.array("other")})
    with pytest.raises(ResultError, match="Not a Video Mocap"):
        read_result(tmp_path / "fmt.npz")
    np.savez(tmp_path / "obj.npz", **{**data, "joint_names": np.array(list(data["joint_names"]), dtype=object)})
    with pytest.raises(ResultError):   # object arrays would need pickle: refused
        read_result(tmp_path / "obj.npz")
    np.savez(tmp_path / "shape.npz", **{**data, "rotations": data["rotations"][:, :5]})
    with pytest.raises(ResultError, match="inconsistent shapes"):
        read_result(tmp_path / "shape.npz")


def test_run_options_and_paths(tmp_path, monkeypatch):
    monkeypatch.delenv(core_engine.ENV_MODULE, raising=False)
    argv = core_engine.run_argv("/py", "v.mp4", "o.npz", core_engine.RunOptions(frame_end=10, focal_px=800))
    assert argv[:6] == ["/py", "-m", "engine", "run", "v.mp4", "--out"]
    # the UI's last frame is inclusive, the engine's --end-frame is the frame to stop before
    assert argv[argv.index("--end-frame") + 1] == "11" and argv[argv.index("--focal") + 1] == "800"
    assert "--start-frame" not in argv
    monkeypatch.setenv(core_engine.ENV_PYTHON, "/env/python")
    assert core_engine.resolve_python("", tmp_path) == Path("/env/python")
    assert core_engine.resolve_python("/pref/python", tmp_path) == Path("/pref/python")
    monkeypatch.delenv(core_engine.ENV_PYTHON)
    assert core_engine.resolve_python("", tmp_path) == core_engine.venv_python(tmp_path)
    assert core_engine.check_video_path("") == "No video selected"
    (tmp_path / "a.txt").write_text("x")
    assert "Not a video" in core_engine.check_video_path(str(tmp_path / "a.txt"))
    assert core_engine.overall_fraction({"stage": "solve", "fraction": 0.5}) == pytest.approx(0.9)


def _job(tmp_path, monkeypatch, mode: str) -> core_engine.EngineJob:
    monkeypatch.setenv(core_engine.ENV_MODULE, FAKE)
    monkeypatch.setenv("FAKE_ENGINE_MODE", mode)
    out = str(tmp_path / "r.npz")
    argv = core_engine.run_argv(sys.executable, "v.mp4", out, core_engine.RunOptions())
    job = core_engine.EngineJob(argv, cwd=ROOT, env=core_engine.engine_env(ROOT))
    job.start()
    return job


def test_job_success(tmp_path, monkeypatch):
    job = _job(tmp_path, monkeypatch, "ok")
    assert job.wait(60)
    out = job.outcome()
    assert out.ok and out.result_path == str(tmp_path / "r.npz") and job.fraction == 1.0
    assert [m["type"] for m in job.messages][0] == "start" and job.messages[-1]["type"] == "done"
    assert read_result(out.result_path).frames == 48


@pytest.mark.parametrize("mode, expect", [("error", "No person was found"), ("crash", "boom in the fake engine")])
def test_job_failures(tmp_path, monkeypatch, mode, expect):
    job = _job(tmp_path, monkeypatch, mode)
    assert job.wait(60)
    out = job.outcome()
    assert not out.ok and not out.cancelled and expect in out.message


def test_job_missing_python(tmp_path):
    job = core_engine.EngineJob([str(tmp_path / "nope" / "python"), "-m", "engine"], cwd=ROOT, env={})
    job.start()
    assert job.finished and "Could not start the engine" in job.outcome().message


@pytest.mark.parametrize("mode", ["slow", "stubborn"])
def test_job_cancel(tmp_path, monkeypatch, mode):
    monkeypatch.setattr(core_engine, "CANCEL_GRACE_S", 0.5)
    job = _job(tmp_path, monkeypatch, mode)
    t0 = time.monotonic()
    while not any(m["type"] == "progress" for m in job.poll() + job.messages):
        assert time.monotonic() - t0 < 30
        time.sleep(0.02)
    job.cancel()
    t1 = time.monotonic()
    assert job.wait(20)
    out = job.outcome()
    assert out.cancelled and not out.ok
    # the polite cancel is honoured at once; a stubborn engine is terminated after the grace period
    assert (time.monotonic() - t1) < (0.5 if mode == "slow" else 3.0)
    assert out.exit_code == (130 if mode == "slow" else -15)


def test_check_engine(monkeypatch, tmp_path):
    monkeypatch.setenv(core_engine.ENV_MODULE, FAKE)
    st = core_engine.check_engine(Path(sys.executable), ROOT)
    assert st.ok and st.version == "fake" and st.device == "cpu"
    missing = core_engine.check_engine(tmp_path / "python", ROOT)
    assert not missing.found and not missing.ok
