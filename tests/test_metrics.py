import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from scripts.vmkit import metrics as M


@pytest.fixture
def gt():
    rng = np.random.default_rng(0)
    T, J = 250, 24
    base = rng.normal(0, 0.3, (1, J, 3))
    walk = np.stack([np.linspace(0, 5, T), np.zeros(T), np.zeros(T)], -1)[:, None]
    return base + walk + rng.normal(0, 0.02, (T, J, 3))


def test_identity_gives_zero(gt):
    res = M.evaluate(gt, gt, fps=30)
    for k in ("mpjpe", "pa_mpjpe", "w_mpjpe100", "wa_mpjpe100", "rte", "accel_error"):
        assert res[k] == pytest.approx(0.0, abs=1e-6), k
    # foot sliding of the ground truth itself is its own motion in contact frames: below the threshold
    assert 0 < res["foot_sliding"] < 10.0


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    R = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    s, t = 1.7, np.array([0.5, -2.0, 3.0])
    y = s * x @ R.T + t
    s2, R2, t2 = M.similarity_transform(x, y)
    assert s2 == pytest.approx(s)
    np.testing.assert_allclose(R2, R, atol=1e-9)
    np.testing.assert_allclose(t2, t, atol=1e-9)
    s3, R3, _ = M.similarity_transform(x, y, scale=False)
    assert s3 == 1.0 and np.linalg.det(R3) == pytest.approx(1.0)


def test_rigid_motion_gives_zero_pa_and_world_aligned_errors(gt):
    R = Rotation.from_rotvec([0.2, 0.1, 1.0]).as_matrix()
    pred = 1.1 * gt @ R.T + np.array([1.0, 2.0, 0.5])   # one similarity for the whole sequence
    assert M.pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-6)
    assert M.w_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-6)
    assert M.wa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-6)
    assert M.mpjpe(pred, gt) > 10.0          # root alignment alone does not remove a rotation


def test_known_offsets_give_known_values(gt):
    pred = gt + np.array([0.0, 0.0, 0.25])    # translation only: removed by root alignment
    assert M.mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.mpjpe(pred, gt, root=None) == pytest.approx(250.0)
    pred = gt.copy()
    pred[:, 5, 0] += 0.10                      # one joint of 24 off by 10 cm
    assert M.mpjpe(pred, gt) == pytest.approx(100.0 / 24)


def test_w_mpjpe_sees_drift_that_wa_mpjpe_removes(gt):
    T = len(gt)
    drift = np.zeros((T, 1, 3))
    drift[:, 0, 1] = np.linspace(0, 2.0, T)   # 2 m sideways drift over the clip
    pred = gt + drift
    assert M.w_mpjpe(pred, gt) > M.wa_mpjpe(pred, gt) > 0
    # chunk of 100 frames with drift 2/249 m/frame: error grows linearly from the 2 aligned frames
    assert 100 < M.w_mpjpe(pred, gt) < 600


def test_rte_percent_of_distance(gt):
    root = gt[:, 0]
    R = Rotation.from_rotvec([0, 0, 0.7]).as_matrix()
    assert M.rte(root @ R.T + 3.0, root) == pytest.approx(0.0, abs=1e-9)
    straight = np.stack([np.linspace(0, 10, 101), np.zeros(101), np.zeros(101)], -1)
    pred = straight.copy()
    pred[:, 2] = 0.5                            # constant 0.5 m off: removed by the rigid alignment
    assert M.rte(pred, straight) == pytest.approx(0.0, abs=1e-9)
    assert M.rte(straight * 1.2, straight) > 1.0  # a scale error is not removed


def test_jitter_and_accel_units():
    fps = 30.0
    t = np.arange(60) / fps
    lin = np.zeros((60, 2, 3))
    lin[..., 0] = t[:, None] * 1.5
    assert M.jitter(lin, fps) == pytest.approx(0.0, abs=1e-9)
    cubic = np.zeros((60, 2, 3))
    cubic[..., 0] = t[:, None] ** 3             # d3x/dt3 = 6 m/s^3 -> 0.6 in 10 m/s^3
    assert M.jitter(cubic, fps) == pytest.approx(0.6)
    frames = np.arange(60.0)
    quad = lin.copy()
    quad[..., 1] += 0.001 * frames[:, None] ** 2  # 2 mm/frame^2
    assert M.accel_error(quad, lin) == pytest.approx(2.0)


def test_foot_sliding():
    T = 50
    gt = np.zeros((T, 2, 3))
    gt[:, 1, 0] = np.arange(T) * 0.05           # second foot moves 5 cm/frame: never in contact
    pred = gt.copy()
    pred[:, 0, 0] = np.arange(T) * 0.004        # first foot slides 4 mm/frame while the GT stands
    assert M.foot_sliding(pred, gt) == pytest.approx(4.0)
    assert M.foot_sliding(gt, gt) == pytest.approx(0.0)
