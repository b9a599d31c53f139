"""TP (engine/tp): the DDIM sampler, window blending, guidance, the representation and strict loading.

References are independent of the network: an exact x0 predictor, hand-made paths with known
velocities and headings, and the forward-process formula.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine import skeleton as sk
from engine.tp import diffusion as df
from engine.tp import representation as rp

ABAR = df.cosine_alphas_cumprod(1000)


def _truth(length: int, dim: int = 3) -> np.ndarray:
    t = np.arange(length)[:, None]
    return np.sin(t / 17.0 + np.arange(dim)) + 0.01 * t


@pytest.mark.parametrize("length,steps", [(50, 1), (50, 10), (300, 10), (300, 50)])
def test_ddim_with_an_exact_x0_predictor_returns_x0(length, steps):
    x0 = _truth(length)
    seen = []

    def predict(xw, t, starts):
        seen.append(t)
        return np.stack([x0[s:s + xw.shape[1]] for s in starts])

    out = df.ddim_sample(predict, length, 3, ABAR, steps=steps, window=120, overlap=30, seed=3)
    np.testing.assert_allclose(out, x0, atol=1e-12)
    assert seen[0] == 999 and seen[-1] == (0 if steps > 1 else 999) and len(seen) == steps  # noisiest first


def test_ddim_update_matches_the_forward_process():
    """One DDIM step from x_t with a fixed x0 lands on sqrt(abar_s) x0 + sqrt(1 - abar_s) eps, eps the
    noise that made x_t (independent formula: q_sample)."""
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((40, 2)), None
    states = []

    def predict(xw, t, starts):
        states.append((t, xw[0].copy()))
        return x0[None]

    df.ddim_sample(predict, 40, 2, ABAR, steps=3, window=120, overlap=30, seed=5)
    (t0, x_t0), (t1, x_t1), _ = states
    eps = (x_t0 - np.sqrt(ABAR[t0]) * x0) / np.sqrt(1 - ABAR[t0])
    np.testing.assert_allclose(x_t0, np.random.default_rng(5).standard_normal((40, 2)))
    np.testing.assert_allclose(x_t1, df.q_sample(x0, ABAR[t1], eps), atol=1e-10)


def test_windows_cover_the_clip_and_overlap():
    for length in (1, 119, 120, 121, 300, 1000):
        starts = df.window_starts(length, 120, 30)
        covered = np.zeros(length, int)
        for s in starts:
            covered[s:s + min(120, length)] += 1
        assert covered.min() >= 1 and starts[0] == 0 and starts[-1] + min(120, length) == length
        assert all(b - a <= 90 for a, b in zip(starts, starts[1:]))       # overlap >= 30
    w = df.blend_weights(300, 120, df.window_starts(300, 120, 30))
    assert w[0, 0] == 1.0 and w[-1, -1] == 1.0 and (w > 0).all()


def test_window_stitching_is_seamless():
    """Windows that disagree (each adds its own constant offset) blend into a sequence without jumps:
    no frame-to-frame step is larger than the truth's own steps plus a share of the disagreement, while
    cutting at the window borders would jump by the full offset difference."""
    length, window, overlap = 400, 120, 30
    x0 = _truth(length, 1)
    offsets = {}

    def predict(xw, t, starts):
        return np.stack([x0[s:s + window] + offsets.setdefault(s, 0.5 * (-1) ** (len(offsets))) for s in starts])

    out = df.ddim_sample(predict, length, 1, ABAR, steps=5, window=window, overlap=overlap)
    steps = np.abs(np.diff(out[:, 0]))
    truth_steps = np.abs(np.diff(x0[:, 0]))
    assert (steps - truth_steps).max() < 1.0 / (overlap + 1) + 1e-9   # the 1.0 disagreement spread over the overlap
    cut = np.concatenate([x0[s:e] + offsets[s] for s, e in zip(sorted(offsets), sorted(offsets)[1:] + [length])])
    assert np.abs(np.diff(cut[:, 0])).max() > 0.9                       # what a naive cut would do


def test_guidance_pulls_toward_the_evidence():
    length = 200
    evidence = _truth(length, 2)

    def predict(xw, t, starts):
        return np.zeros_like(xw)                                       # a prior that says "zero"

    def run(w):
        def guide(x0, t):
            return x0 + w * (evidence - x0)
        return df.ddim_sample(predict, length, 2, ABAR, steps=10, window=120, overlap=30, guide=guide)

    free, half, full = (np.abs(run(w) - evidence).mean() for w in (0.0, 0.5, 1.0))
    assert full < 1e-12 and half < 0.6 * free


def test_sampler_reports_every_step_and_can_be_cancelled():
    calls = []

    class Stop(Exception):
        pass

    def report(i, n):
        calls.append((i, n))
        if i == 3:
            raise Stop

    with pytest.raises(Stop):
        df.ddim_sample(lambda xw, t, s: np.zeros_like(xw), 100, 2, ABAR, steps=8, window=120, overlap=30,
                       report=report)
    assert calls == [(1, 8), (2, 8), (3, 8)]


def _rest_joints() -> np.ndarray:
    return sk.rest_positions(sk.DEFAULT_REST_OFFSETS)


def _turned(yaw: float) -> np.ndarray:
    return _rest_joints() @ rp.yaw_matrices(np.array([yaw]))[0].T


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.0, 3.0])
def test_heading_of_a_turned_body(yaw):
    J = np.repeat(_turned(yaw)[None], 10, 0)
    got = rp.heading(J, smoothing=0)
    assert np.allclose(np.angle(np.exp(1j * (got - yaw))), 0, atol=1e-9)
    # the condition does not depend on the heading
    np.testing.assert_allclose(rp.condition(J, got)[0], rp.condition(_rest_joints()[None], np.zeros(1))[0],
                               atol=1e-6)


def test_walking_forward_is_a_forward_velocity_and_integrates_back():
    """Facing -Y (rest) and moving along -Y at 1.2 m/s: velocity (0, -1.2) in the heading frame. A
    curved walk with a turning heading comes back from target -> integrate exactly."""
    fps, T = 30.0, 90
    root = np.zeros((T, 3))
    root[:, 1] = -1.2 * np.arange(T) / fps
    root[:, 2] = 0.9
    x = rp.target(root, np.zeros(T), np.zeros((T, 4), bool), fps)
    np.testing.assert_allclose(x[:, rp.VEL], np.tile([0.0, -1.2], (T, 1)), atol=1e-6)
    assert (x[:, rp.CONTACT] == -1).all()
    t = np.arange(T) / fps
    curve = np.stack([np.sin(t), np.cos(0.5 * t) - 1, 0.9 + 0.02 * np.sin(5 * t)], 1)
    yaw = 0.8 * t
    back = rp.integrate(rp.target(curve, yaw, np.zeros((T, 4), bool), fps), yaw, fps, curve[0])
    np.testing.assert_allclose(back, curve, atol=1e-5)


def test_resample_round_trip_and_rates():
    a = np.cumsum(np.ones((61, 2)), 0)                 # linear in time: resampling is exact
    up = rp.resample(a, 30.0, 60.0)
    assert len(up) == 121
    np.testing.assert_allclose(rp.resample(up, 60.0, 30.0, 61), a, atol=1e-9)


def _tiny_net():
    torch = pytest.importorskip("torch")
    from engine.tp.model import TPConfig, TPDenoiser

    torch.manual_seed(0)
    return TPDenoiser(TPConfig(window=32, dim=16, heads=2, layers=1, diffusion_steps=100))


def test_weights_load_strictly(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    from engine.tp import model

    net = _tiny_net()
    net.set_stats(np.arange(7), np.ones(7) * 2, np.zeros(72), np.ones(72))
    model.save(net, tmp_path)
    back = model.load(tmp_path)
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    assert torch.equal(back.x_mean, torch.arange(7, dtype=torch.float32))      # the statistics travel too
    sd = load_file(str(tmp_path / model.WEIGHTS_NAME))
    bad = dict(sd)
    bad.pop("out.bias")
    save_file(bad, str(tmp_path / model.WEIGHTS_NAME))
    with pytest.raises(RuntimeError, match="out.bias"):
        model.load(tmp_path)
    save_file({**sd, "extra": torch.zeros(1)}, str(tmp_path / model.WEIGHTS_NAME))
    with pytest.raises(RuntimeError, match="extra"):
        model.load(tmp_path)
    save_file(sd, str(tmp_path / model.WEIGHTS_NAME))
    doc = json.loads((tmp_path / model.CONFIG_NAME).read_text())
    doc["config"]["surprise"] = 1
    (tmp_path / model.CONFIG_NAME).write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="surprise"):
        model.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="train_tp"):
        model.load(tmp_path / "nowhere")


def test_stage_guidance_with_full_weight_returns_the_evidence():
    """The stage's sampler on a real (untrained) network: weight 1 gives the evidence's velocity and
    height exactly; weight 0.5 lands nearer the evidence than no guidance."""
    from engine.stages.trajectory_tp import TPTrajectory, TPTrajectoryConfig

    stage = TPTrajectory.__new__(TPTrajectory)
    stage.cfg, stage.device, stage.net = TPTrajectoryConfig(steps=5), "cpu", _tiny_net().eval()
    rng = np.random.default_rng(1)
    T = 80
    cond = rng.standard_normal((T, 72)).astype(np.float32)
    ev = np.zeros((T, 7), np.float32)
    ev[:, 0], ev[:, 1], ev[:, 2] = 0.3, -1.1, 0.92
    dims = [0, 1, 2]
    out = {w: stage.sample(cond, ev, np.full(T, w), lambda i, n: None) for w in (0.0, 0.5, 1.0)}
    np.testing.assert_allclose(out[1.0][:, dims], ev[:, dims], atol=1e-5)
    d = {w: np.abs(o[:, dims] - ev[:, dims]).mean() for w, o in out.items()}
    assert d[0.5] < 0.7 * d[0.0]
    free = stage.sample(cond, None, None, lambda i, n: None)
    np.testing.assert_allclose(free, out[0.0], atol=1e-5)          # weight 0 = no evidence (same seed)


def test_evidence_weights_vanish_where_the_person_is_missing():
    from engine.stages.trajectory_tp import evidence_weights

    valid = np.ones(40, bool)
    valid[15:25] = False
    w = evidence_weights(valid, np.full(40, 5.0), 2.0, 0.8)
    assert np.allclose(w[:10], 0.8) and np.allclose(w[18:22], 0.0) and np.allclose(w[30:], 0.8)
    assert (np.abs(np.diff(w)) <= 0.8 / 5 + 1e-9).all()            # eased in and out


def test_onto_rays_keeps_the_direction_and_the_distance_along_it():
    from engine.trajectory import onto_rays

    rng = np.random.default_rng(2)
    C = rng.normal(0, 1, (20, 3))
    through = C + rng.normal(0, 3, (20, 3))
    d = (through - C) / np.linalg.norm(through - C, axis=1, keepdims=True)
    s = rng.uniform(1, 5, 20)
    off = np.cross(d, rng.normal(0, 1, (20, 3)))                     # perpendicular to the ray
    out = onto_rays(C + s[:, None] * d + off, C, through)
    np.testing.assert_allclose(out, C + s[:, None] * d, atol=1e-9)
