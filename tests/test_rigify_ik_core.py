"""core.rigify_ik (numpy only): pose channels from evaluated matrices, planted feet, the knee pole."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from addon.core import rigify_ik


def _mats(rng, T):
    m = np.tile(np.eye(4), (T, 1, 1))
    m[:, :3, :3] = Rotation.random(T, random_state=rng.integers(1 << 30)).as_matrix()
    m[:, :3, 3] = rng.normal(size=(T, 3))
    return m


def test_pose_basis_inverts_blender_composition():
    rng = np.random.default_rng(0)
    parent, final, rel = _mats(rng, 5), _mats(rng, 5), _mats(rng, 1)[0]
    basis = rigify_ik.pose_basis(parent, rel, final)
    np.testing.assert_allclose(parent @ rel[None] @ basis, final, atol=1e-12)   # Final = Final_p · rel · Basis


def _walk(T=30):
    """A foot moving along +y at 1 cm per frame, the ball 0.15 m ahead of the ankle."""
    foot = np.tile(np.eye(4), (T, 1, 1))
    foot[:, 1, 3] = 0.01 * np.arange(T)
    ball = foot[:, :3, 3] + np.array([0.0, 0.15, -0.05])
    return foot, ball


def test_plant_holds_ankle_then_ball_without_jump():
    foot, ball = _walk()
    ca = np.zeros(30, bool)
    cb = np.zeros(30, bool)
    ca[5:12] = True
    cb[9:16] = True                    # both down 9..11, heel up 12..15
    out = rigify_ik.plant(foot, ball, ca, cb, 1.0)
    ankle = out[:, :3, 3]
    assert np.abs(ankle[5:12] - ankle[5]).max() < 1e-12                  # held
    np.testing.assert_allclose(ankle[5], foot[5:12, :3, 3].mean(0))      # at the run's mean
    new_ball = ankle + (ball - foot[:, :3, 3])                           # rotation kept: the ball is carried
    assert np.abs(new_ball[11:16] - new_ball[11]).max() < 1e-12          # heel-off: the ball stays put
    assert np.abs(out[:, :3, :3] - foot[:, :3, :3]).max() == 0           # only translated
    np.testing.assert_allclose(ankle[25:], foot[25:, :3, 3])            # far from contact: the FK foot
    assert np.linalg.norm(np.diff(ankle, axis=0), axis=1).max() < 0.03   # no pops (FK moves 1 cm per frame)
    np.testing.assert_array_equal(rigify_ik.plant(foot, ball, ca, cb, 0.0), foot)
    half = rigify_ik.plant(foot, ball, ca, cb, 0.5)
    np.testing.assert_allclose(half[:, :3, 3] - foot[:, :3, 3], 0.5 * (ankle - foot[:, :3, 3]), atol=1e-12)


def test_pole_in_knee_plane_and_straight_fallback():
    hip = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    ankle = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, 0.1]])
    knee = np.array([[0.0, -0.1, 0.55], [0.0, 0.0, 0.55]])       # bent forward (-y); straight
    fallback = np.array([[1.0, 0.0, 0.0], [0.3, 0.0, 0.2]])
    p = rigify_ik.pole_points(hip, knee, ankle, fallback, 0.5)
    np.testing.assert_allclose(p[0], knee[0] + [0.0, -0.5, 0.0], atol=1e-12)   # the knee's side, not the fallback
    np.testing.assert_allclose(p[1], knee[1] + [0.5, 0.0, 0.0], atol=1e-12)    # fallback, across the leg
