"""Keypoint quality (BlazePose Full / Heavy): the opt-in Heavy set-up (engine/setup_env.py), the
engine's ``--keypoints-quality`` switch and its errors, and the add-on's arguments. No network: the
npm package is a tarball made here, and a missing Heavy model is simulated (engine.pose.model_file)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

from addon.core import engine as core_engine
from engine import cli, pose
from engine.errors import EngineError

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("setup_env", ROOT / "engine" / "setup_env.py")
setup_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_env)

PAYLOAD = b"not a real tflite model\n" * 1000


def make_tarball(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def npm_like(tmp: Path, payload: bytes = PAYLOAD) -> Path:
    """A tarball laid out as ``npm pack @mediapipe/pose`` writes it (package/...)."""
    return make_tarball(tmp / "mediapipe-pose-test.tgz", {
        "package/package.json": b'{"name": "@mediapipe/pose"}', "package/README.md": b"readme",
        "package/pose_landmark_full.tflite": b"full", "package/pose_landmark_heavy.tflite": payload})


@pytest.fixture
def fake_heavy(monkeypatch):
    """Record PAYLOAD as 'the' Heavy file (size and hash) for the set-up's checks."""
    monkeypatch.setattr(setup_env, "HEAVY_SIZE", len(PAYLOAD))
    monkeypatch.setattr(setup_env, "HEAVY_SHA256", hashlib.sha256(PAYLOAD).hexdigest())


@pytest.fixture
def fake_mediapipe(tmp_path) -> Path:
    mp = tmp_path / "site-packages" / "mediapipe"
    (mp / "modules" / "pose_landmark").mkdir(parents=True)
    return mp


# ---- set-up --------------------------------------------------------------------------------------
def test_recorded_heavy_file_is_the_pinned_package():
    assert setup_env.HEAVY_PACKAGE == "@mediapipe/pose" and setup_env.HEAVY_VERSION == "0.5.1675469404"
    assert setup_env.HEAVY_SIZE == 27_709_200 and len(setup_env.HEAVY_SHA256) == 64


def test_find_member_takes_only_the_package_level_regular_file(tmp_path):
    tgz = make_tarball(tmp_path / "a.tgz", {"package/sub/pose_landmark_heavy.tflite": b"deep",
                                            "pose_landmark_heavy.tflite": b"top",
                                            "package/pose_landmark_heavy.tflite": b"right"})
    with tarfile.open(tgz) as tar:
        m = setup_env.find_member(tar)
        assert m.name == "package/pose_landmark_heavy.tflite" and tar.extractfile(m).read() == b"right"
    missing = make_tarball(tmp_path / "b.tgz", {"package/pose_landmark_full.tflite": b"full"})
    with tarfile.open(missing) as tar, pytest.raises(setup_env.SetupError, match="not in the package"):
        setup_env.find_member(tar)
    link = make_tarball(tmp_path / "c.tgz", {}, links={"package/pose_landmark_heavy.tflite": "/etc/passwd"})
    with tarfile.open(link) as tar, pytest.raises(setup_env.SetupError, match="not a regular file"):
        setup_env.find_member(tar)
    dotdot = make_tarball(tmp_path / "d.tgz", {"../pose_landmark_heavy.tflite": b"escape"})
    with tarfile.open(dotdot) as tar, pytest.raises(setup_env.SetupError):
        setup_env.find_member(tar)


def test_install_path_is_where_the_engine_looks(fake_mediapipe):
    target = setup_env.heavy_target(fake_mediapipe)
    assert target == fake_mediapipe / "modules" / "pose_landmark" / "pose_landmark_heavy.tflite"
    real = setup_env.mediapipe_dir(Path(sys.executable))          # asks this interpreter, no import
    assert setup_env.heavy_target(real) == pose.model_file(2)
    assert pose.model_file(1).parent == pose.model_file(2).parent


def test_install_is_checked_atomic_and_idempotent(tmp_path, fake_mediapipe, fake_heavy):
    tgz = npm_like(tmp_path)
    target, changed = setup_env.install_heavy(fake_mediapipe, tarball=tgz)
    assert changed and target.read_bytes() == PAYLOAD and oct(target.stat().st_mode & 0o777) == "0o644"
    # installed: nothing is read or fetched again (the tarball and npm given here do not exist)
    assert setup_env.install_heavy(fake_mediapipe, tarball=tmp_path / "gone.tgz", npm="/no/npm") == (target, False)
    # a damaged file is replaced
    target.write_bytes(b"truncated")
    assert setup_env.install_heavy(fake_mediapipe, tarball=tgz) == (target, True)
    assert target.read_bytes() == PAYLOAD
    # a tarball whose file has the right size but another hash is refused; the installed file stays
    target.write_bytes(b"old")
    (tmp_path / "bad").mkdir()
    bad = npm_like(tmp_path / "bad", b"X" * len(PAYLOAD))
    with pytest.raises(setup_env.SetupError, match="SHA-256"):
        setup_env.install_heavy(fake_mediapipe, tarball=bad)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["pose_landmark_heavy.tflite"]   # no temp left


def test_npm_missing_or_refusing_is_a_clear_failure(tmp_path, monkeypatch, fake_mediapipe, fake_heavy):
    monkeypatch.setattr(setup_env.shutil, "which", lambda name: None)
    with pytest.raises(setup_env.SetupError, match=r"npm .*not found.*--heavy-tarball"):
        setup_env.install_heavy(fake_mediapipe)
    refuse = tmp_path / "npm_404"
    refuse.write_text(f"#!{sys.executable}\nimport sys\nprint('npm error code E404', file=sys.stderr)\n"
                      "print('npm error 404 Not Found - GET https://registry.npmjs.org/@mediapipe%2fpose', "
                      "file=sys.stderr)\nsys.exit(1)\n")
    refuse.chmod(0o755)
    with pytest.raises(setup_env.SetupError, match=r"npm could not fetch @mediapipe/pose@.*E404|404 Not Found"):
        setup_env.install_heavy(fake_mediapipe, npm=str(refuse))
    assert not setup_env.heavy_target(fake_mediapipe).exists()


def test_install_through_an_npm_client(tmp_path, fake_mediapipe, fake_heavy):
    """The npm path end to end with a stand-in client that 'packs' the tarball made here."""
    tgz = npm_like(tmp_path)
    log = tmp_path / "npm_args.json"
    npm = tmp_path / "npm"
    npm.write_text(f"#!{sys.executable}\nimport json, shutil, sys\n"
                   f"open({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
                   "dest = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
                   f"shutil.copy({str(tgz)!r}, dest + '/mediapipe-pose-0.5.1675469404.tgz')\n"
                   "print(json.dumps([{'filename': 'mediapipe-pose-0.5.1675469404.tgz'}]))\n")
    npm.chmod(0o755)
    target, changed = setup_env.install_heavy(fake_mediapipe, npm=str(npm))
    assert changed and target.read_bytes() == PAYLOAD
    args = json.loads(log.read_text())
    assert args[:2] == ["pack", "@mediapipe/pose@0.5.1675469404"] and "--ignore-scripts" in args


def test_setup_heavy_only(tmp_path, monkeypatch, capsys, fake_mediapipe, fake_heavy):
    tgz = npm_like(tmp_path)
    assert setup_env.main(["--venv", str(tmp_path / "nothing"), "--heavy-only", "--heavy-tarball", str(tgz)]) == 1
    assert "FAILED: no environment" in capsys.readouterr().out
    venv = tmp_path / "venv"
    py = setup_env.venv_python(venv)
    py.parent.mkdir(parents=True)
    py.write_text("")
    monkeypatch.setattr(setup_env, "mediapipe_dir", lambda p: fake_mediapipe if p == py else None)
    for expect in ("BlazePose Heavy installed", "BlazePose Heavy already installed"):
        assert setup_env.main(["--venv", str(venv), "--heavy-only", "--heavy-tarball", str(tgz)]) == 0
        out = capsys.readouterr().out
        assert expect in out and out.rstrip().splitlines()[-1].startswith("DONE"), out


# ---- engine --------------------------------------------------------------------------------------
def _run(*extra: str):
    return cli.run_options(cli.build_parser().parse_args(["run", "v.mp4", "--out", "o.npz", *extra]))


@pytest.fixture
def heavy_present(tmp_path, monkeypatch):
    real = pose.model_file
    fake = tmp_path / "pose_landmark_heavy.tflite"
    fake.write_bytes(b"x")
    monkeypatch.setattr(pose, "model_file", lambda c=1: fake if c == 2 else real(c))


@pytest.fixture
def heavy_missing(tmp_path, monkeypatch):
    real = pose.model_file
    monkeypatch.setattr(pose, "model_file", lambda c=1: tmp_path / "gone" / "pose_landmark_heavy.tflite"
                        if c == 2 else real(c))


def test_quality_switch_sets_the_stage_model(heavy_present):
    assert "model_complexity" not in _run().keypoints.options          # Full: the stage default
    assert _run("--keypoints-quality", "full").keypoints.options["model_complexity"] == 1
    heavy = _run("--keypoints-quality", "heavy").keypoints
    assert heavy.name == "blazepose" and heavy.options["model_complexity"] == 2
    tracked = _run("--keypoints-quality", "heavy", "--person", "largest").keypoints
    assert tracked.name == "blazepose_tracked" and tracked.options == {"person": "largest", "model_complexity": 2}
    assert _run("--option", "keypoints.model_complexity=2").keypoints.options["model_complexity"] == 2
    assert _run("--keypoints-quality", "heavy", "--option", "keypoints.model_complexity=2").keypoints == heavy
    with pytest.raises(EngineError, match="contradicts") as e:
        _run("--keypoints-quality", "heavy", "--option", "keypoints.model_complexity=1")
    assert e.value.code == "usage"
    with pytest.raises(EngineError) as e:
        _run("--keypoints-quality", "ultra")
    assert e.value.code == "usage" and "heavy" in e.value.message


def test_missing_heavy_names_the_setup_command(heavy_missing):
    for extra in (("--keypoints-quality", "heavy"), ("--option", "keypoints.model_complexity=2"),
                  ("--keypoints-quality", "heavy", "--person", "central")):
        with pytest.raises(EngineError) as e:
            _run(*extra)
        assert e.value.code == "environment"
        assert "setup_env.py" in e.value.message and "--heavy-only" in e.value.message
        assert f"--venv {sys.prefix}" in e.value.message and "Heavy" in e.value.message
    with pytest.raises(EngineError, match="--heavy-only"):   # the model class says the same
        pose.BlazePose(model_complexity=2)
    _run("--keypoints-quality", "full")                       # Full is unaffected
    status = pose.quality_status()
    assert status["full"]["installed"] and not status["heavy"]["installed"]
    assert "--heavy-only" in status["heavy"]["install"]


def test_check_and_stage_listing_report_heavy(heavy_present):
    from engine import stages

    listing = stages.describe_all()["keypoints"]
    for name in ("blazepose", "blazepose_tracked"):
        q = listing[name]["qualities"]
        assert q["heavy"] == {"model_complexity": 2, "path": str(pose.model_file(2)), "installed": True}
        assert q["full"]["installed"] and q["full"]["model_complexity"] == 1


def test_check_json_has_keypoint_quality():
    import subprocess

    p = subprocess.run([sys.executable, "-m", "engine", "check", "--json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    info = json.loads(p.stdout.splitlines()[-1])
    kq = info["keypoint_quality"]
    assert set(kq) == {"full", "heavy"} and kq["full"]["installed"] is True
    heavy_file = pose.model_file(2)
    assert kq["heavy"]["installed"] == heavy_file.is_file()
    assert ("install" in kq["heavy"]) != kq["heavy"]["installed"]


@pytest.mark.skipif(not (pose.model_file(2) and pose.model_file(2).is_file()),
                    reason="BlazePose Heavy not installed (engine/setup_env.py --heavy-only)")
def test_heavy_runs_offline_when_installed():
    from engine import video

    with video.VideoReader(str(ROOT / "engine" / "data" / "sample_walk.mp4")) as reader:
        frames = [fr.image for _, fr in zip(range(5), reader)]
    with pose.BlazePose(model_complexity=2) as bp:
        dets = [bp(f) for f in frames]
    assert all(d is not None for d in dets) and dets[-1].world.shape == (33, 3)


# ---- add-on --------------------------------------------------------------------------------------
def test_addon_arguments_for_quality(heavy_present):
    full = core_engine.RunOptions().args()
    assert "--keypoints-quality" not in full          # the default is not passed (older engines run it)
    heavy = core_engine.RunOptions(keypoint_quality="heavy").args()
    i = heavy.index("--keypoints-quality")
    assert heavy[i + 1] == "heavy"
    with pytest.raises(ValueError, match="keypoint_quality"):
        core_engine.RunOptions(keypoint_quality="Heavy").args()
    argv = core_engine.run_argv("py", "v.mp4", "o.npz", core_engine.RunOptions(keypoint_quality="heavy"))
    # what the add-on builds is what the engine's parser understands
    opts = cli.run_options(cli.build_parser().parse_args(argv[argv.index("run"):]))
    assert opts.keypoints.options["model_complexity"] == 2
    assert core_engine.KEYPOINT_QUALITIES == tuple(pose.QUALITIES)


def test_addon_heavy_status_and_setup_command(tmp_path):
    st = core_engine.EngineStatus(True, True, "ok", info={"keypoint_quality": {"heavy": {"installed": False}}})
    assert core_engine.heavy_installed(st) is False
    st.info["keypoint_quality"]["heavy"]["installed"] = True
    assert core_engine.heavy_installed(st) is True
    assert core_engine.heavy_installed(core_engine.EngineStatus(True, True, "old engine")) is None
    argv = core_engine.setup_argv(tmp_path, tmp_path / "venv", heavy_only=True)
    assert argv[1].endswith(os.path.join("engine", "setup_env.py"))
    assert argv[-3:] == ["--venv", str(tmp_path / "venv"), "--heavy-only"]
    assert "--heavy" not in core_engine.setup_argv(tmp_path, tmp_path / "venv")
    venv = tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert core_engine.venv_of(venv / "bin" / "python") == venv
    assert core_engine.venv_of(tmp_path / "python") is None and core_engine.venv_of(None) is None


# ---- evaluation tool -------------------------------------------------------------------------------
def test_eval_cache_key_separates_models(tmp_path):
    from scripts.eval_rope import cache_path

    clip = tmp_path / "00_static.mp4"
    clip.write_bytes(b"x")
    full, heavy = cache_path(clip, tmp_path, 1), cache_path(clip, tmp_path, 2)
    assert full != heavy and full.name.endswith("_mc1.npz") and heavy.name.endswith("_mc2.npz")
