"""The stage seam (engine/stages): registry, strict configs, progress + cancel in every stage, and a toy
implementation registered from a test that runs end to end through the CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine import stages
from engine.errors import EXIT_CODES, Cancelled, EngineError
from engine.pose import LandmarkTrack
from engine.result import read_result
from engine.stages.records import BodyMotion, Clip, Trajectory

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "engine" / "data" / "sample_walk.mp4"

# A toy body stage: the rest pose standing at the landmarks' hip centre, anchored by the raw landmarks.
TOY_STAGE = textwrap.dedent('''
    import numpy as np
    from dataclasses import dataclass
    from engine import skeleton as sk
    from engine.geometry.frames import blazepose_to_bc
    from engine.stages import register
    from engine.stages.records import BodyMotion

    @dataclass(frozen=True)
    class ToyConfig:
        lift: float = 0.0

    @register
    class ToyBody:
        kind, name = "body", "toy"
        Config = ToyConfig

        @classmethod
        def from_config(cls, cfg, device="cpu"):
            return cls()

        def __call__(self, track, clip, report):
            T = len(track)
            report(0, 1)
            rest = sk.DEFAULT_REST_OFFSETS.copy()
            R = np.tile(np.eye(3, dtype=np.float32), (T, sk.J, 1, 1))
            root = np.zeros((T, 3), np.float32)
            joints = np.repeat(sk.rest_positions(rest)[None] - rest[0], T, 0).astype(np.float32)
            world = np.nan_to_num(blazepose_to_bc(track.world))
            vis = np.where(track.valid[:, None], track.visibility, 0.0)
            report(1, 1)
            return BodyMotion(rotations=R, root=root, rest_offsets=rest, joints=joints, height=1.7,
                              joint_confidence=np.ones((T, sk.J), np.float32), anchors=world,
                              anchor_landmarks=[[i] for i in range(33)], anchor_weights=vis,
                              foot_anchors=[27, 28, 29, 30, 31, 32])
''')


@pytest.fixture(scope="module")
def sample_track(tmp_path_factory) -> LandmarkTrack:
    """The sample's BlazePose track, from one real engine run (its result stores the raw landmarks)."""
    out = tmp_path_factory.mktemp("stages") / "sample.npz"
    p = subprocess.run([sys.executable, "-m", "engine", "run", str(SAMPLE), "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-2000:]
    r = read_result(out)
    return LandmarkTrack(image=r["landmarks_image"], world=r["landmarks_world"],
                         visibility=r["landmarks_visibility"], valid=r["valid"], times=r["times"],
                         frame_index=r["frame_index"])


def _clip(**kw) -> Clip:
    return Clip(fps=30.0, width=640, height=360, focal_px=float(np.hypot(640, 360)), **kw)


def test_builtin_stages_are_registered_with_frozen_configs():
    names = stages.available()
    assert "blazepose" in names["keypoints"] and "solve" in names["body"] and "perspective" in names["trajectory"]
    for kind, impls in names.items():
        for name in impls:
            cls = stages.get(kind, name)
            cfg = cls.Config()
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(cfg, dataclasses.fields(cfg)[0].name, None)


def test_unknown_stage_is_a_usage_error_naming_the_valid_ones():
    with pytest.raises(EngineError) as e:
        stages.get("body", "nope")
    assert e.value.code == "usage" and "solve" in e.value.message


def test_config_loading_is_strict(tmp_path):
    Cfg = stages.get("body", "solve").Config
    cfg = stages.config_from_dict(Cfg, {"iterations": 7})
    assert cfg.iterations == 7 and cfg.w_smooth == Cfg().w_smooth
    with pytest.raises(ValueError, match="unknown config keys"):
        stages.config_from_dict(Cfg, {"iterationz": 7})
    with pytest.raises(ValueError, match="expected int"):
        stages.config_from_dict(Cfg, {"iterations": "7"})
    with pytest.raises(ValueError, match="expected int"):
        stages.config_from_dict(Cfg, {"iterations": 7.5})
    path = tmp_path / "config.json"
    stages.save_config(cfg, path)
    assert stages.load_config(Cfg, path) == cfg
    d = json.loads(path.read_text())
    del d["lr"]
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="missing"):
        stages.load_config(Cfg, path)
    with pytest.raises(EngineError, match="Bad option"):
        stages.build("body", "solve", "cpu", {"nonsense": 1})


def _stage_calls(kind: str, name: str, track: LandmarkTrack, report):
    stage = stages.build(kind, name, "cpu")
    if kind == "body":
        return stage(track, _clip(), report)
    motion = stages.build("body", "solve", "cpu", {"iterations": 2})(track, _clip(), lambda i, n: None)
    if kind == "trajectory":
        return stage(track, motion, _clip(), report)
    traj = stages.build("trajectory", "perspective", "cpu")(track, motion, _clip(), lambda i, n: None)
    return stage(motion, traj, _clip(), report)


@pytest.mark.parametrize("kind", ["body", "trajectory", "refine"])
def test_every_stage_reports_progress_and_honours_cancel(kind, sample_track):
    names = stages.available(kind)[kind]
    if not names:
        pytest.skip(f"no {kind} stage is registered yet")
    for name in names:
        calls: list[tuple[int, int]] = []
        out = _stage_calls(kind, name, sample_track, lambda i, n: calls.append((i, n)))
        assert calls, f"{kind} stage {name!r} never reported progress"
        assert all(0 <= i <= n for i, n in calls), calls
        assert isinstance(out, {"body": BodyMotion, "trajectory": Trajectory, "refine": tuple}[kind])

        def cancel(i, n):
            raise Cancelled()

        with pytest.raises(Cancelled):
            _stage_calls(kind, name, sample_track, cancel)


def test_body_stage_output_contract(sample_track):
    T = len(sample_track)
    m = stages.build("body", "solve", "cpu")(sample_track, _clip(), lambda i, n: None)
    assert m.rotations.shape == (T, 24, 3, 3) and m.root.shape == (T, 3) and m.joints.shape == (T, 24, 3)
    RtR = np.einsum("tjab,tjac->tjbc", m.rotations, m.rotations)
    assert np.allclose(RtR, np.eye(3), atol=1e-4)
    assert m.anchors.shape[:2] == m.anchor_weights.shape and len(m.anchor_landmarks) == m.anchors.shape[1]
    assert m.foot_anchors and max(m.foot_anchors) < m.anchors.shape[1]
    # the root joint of the FK positions is the root translation
    assert np.allclose(m.joints[:, 0], m.root, atol=1e-5)


def test_toy_stage_registered_from_a_test_runs_through_the_cli(tmp_path):
    out = tmp_path / "toy.npz"
    code = TOY_STAGE + textwrap.dedent(f'''
        import sys
        from engine.cli import main
        sys.exit(main(["run", {str(SAMPLE)!r}, "--out", {str(out)!r}, "--body", "toy", "--refine", "none"]))
    ''')
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-3000:]
    r = read_result(out)
    q = r["rotations"]
    assert np.allclose(np.abs(q[:, 1:, 0]), 1.0, atol=1e-5)      # every joint but the root at rest (no foot lock)
    path = np.linalg.norm(r["root_translation"][-1, :2] - r["root_translation"][0, :2])
    assert path > 1.0, path                                      # the walker still travels (trajectory ran)
    meta = json.loads(str(r["meta_json"]))
    assert meta["options"]["body"]["name"] == "toy"


def test_cli_rejects_unknown_stage_and_misplaced_option(tmp_path):
    for args in (["--body", "nope"], ["--trajectory", "nope"], ["--refine", "nope"]):
        p = subprocess.run([sys.executable, "-m", "engine", "run", str(SAMPLE), "--out", str(tmp_path / "o.npz"),
                            *args], cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert p.returncode == EXIT_CODES["usage"], (args, p.stdout)
        assert "Unknown" in p.stdout and not (tmp_path / "o.npz").exists()


def test_check_lists_registered_stages():
    p = subprocess.run([sys.executable, "-m", "engine", "check", "--json"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    report = json.loads(p.stdout)
    st = report["stages"]
    assert st["body"]["rope"]["default"] is True and st["body"]["rope"]["weights_found"] is True
    assert st["body"]["solve"]["default"] is False and st["body"]["solve"]["config"]["iterations"] == 40
    assert st["keypoints"]["blazepose"]["weights_found"] is True
    assert st["trajectory"]["perspective"]["weights_found"] is True


def test_listing_stages_loads_no_heavy_library():
    # the CLI parses options against the registry before the pose loop; torch/mediapipe load later, in
    # parallel with decoding (a top-level torch import here cost ~4 s of start-up in bench_speed)
    code = ("import sys, engine.cli, engine.pipeline, engine.stages as s; s.available(); s.describe_all(); "
            "print(sorted(m for m in ('torch', 'mediapipe', 'cv2', 'scipy', 'anny') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr


def test_stage_options_from_the_command_line():
    from engine.cli import build_parser, parse_stage_options, run_options

    assert parse_stage_options(["trajectory.steps=20", "trajectory.evidence=false", "body.smoothing=0.1",
                                "keypoints.person=largest"]) == {
        "trajectory": {"steps": 20, "evidence": False}, "body": {"smoothing": 0.1}, "keypoints": {"person": "largest"}}
    for bad in ("steps=20", "camera.steps=1", "trajectory.=1", "trajectory.steps"):
        with pytest.raises(EngineError, match="KIND.KEY=VALUE"):
            parse_stage_options([bad])

    def opts(*extra):
        return run_options(build_parser().parse_args(["run", str(SAMPLE), "--out", "o.npz", *extra]))

    o = opts("--trajectory", "perspective", "--option", "trajectory.depth_smoothing=0.5")
    assert o.trajectory.options == {"depth_smoothing": 0.5}
    with pytest.raises(EngineError, match="no setting 'steps'"):
        opts("--trajectory", "perspective", "--option", "trajectory.steps=3")
    with pytest.raises(EngineError, match="Bad option"):          # the type is checked when the stage is built
        stages.build("trajectory", "perspective", "cpu", opts("--trajectory", "perspective", "--option",
                                                              "trajectory.depth_smoothing=\"x\"").trajectory.options)
