"""Planted feet (addon/core/footlock.py): two-bone IK on the legs over the result's contact frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import fake_engine
from addon.core import footlock
from addon.core.result import read_result
from addon.core.retarget import world_rotations

LEFT_ANKLE, LEFT_FOOT, RIGHT_ANKLE, RIGHT_FOOT = 7, 10, 8, 11
CONTACT_NAMES = ("left_ankle", "left_foot", "right_ankle", "right_foot")


def sliding_result(tmp_path, T: int = 48):
    """A gentle random motion whose root drifts (so un-locked feet slide), with contact runs set."""
    path = tmp_path / "r.npz"
    fake_engine.make_result(path, frames=T, seed=3)
    r = read_result(path)
    rv = Rotation.from_quat(r.rotations.reshape(-1, 4), scalar_first=True).as_rotvec().reshape(T, -1, 3) * 0.3
    for knee in (4, 5):          # knees bent 40 degrees (as in stance): the IK has room to reach its goals
        rv[:, knee] = (Rotation.from_euler("x", 40, degrees=True) * Rotation.from_rotvec(rv[:, knee])).as_rotvec()
    q = Rotation.from_rotvec(rv.reshape(-1, 3)).as_quat(scalar_first=True).reshape(r.rotations.shape)
    root = r.root_translation * np.array([0.2, 0.2, 1.0])
    c = np.zeros((T, 4))
    c[5:15, 0] = 1         # left ankle
    c[10:20, 1] = 1        # left ball (overlaps the ankle: 10..14 both, 15..19 heel up)
    c[24:36, 2] = 1        # right ankle
    c[24:36, 3] = 1        # right ball
    r = dataclasses.replace(r, rotations=q, root_translation=root, contact_names=CONTACT_NAMES, foot_contacts=c)
    return dataclasses.replace(r, joints_world=footlock._fk(world_rotations(q, r.parents), root, r.rest_offsets,
                                                            r.parents))


def _spread(p: np.ndarray) -> float:
    return float(np.linalg.norm(p - p.mean(0), axis=1).max())


def test_feet_stay_put_on_contact_frames(tmp_path):
    r = sliding_result(tmp_path)
    before = {j: _spread(r.joints_world[s:e, j]) for j, s, e in
              ((LEFT_ANKLE, 5, 15), (LEFT_FOOT, 15, 20), (RIGHT_ANKLE, 24, 36), (RIGHT_FOOT, 24, 36))}
    assert min(before.values()) > 0.01          # they do slide without the lock
    out = footlock.lock_feet(r, 1.0)
    P = out.joints_world
    assert _spread(P[5:15, LEFT_ANKLE]) < 5e-4
    assert _spread(P[15:20, LEFT_FOOT]) < 5e-4          # heel up: the ball holds
    assert _spread(P[24:36, RIGHT_ANKLE]) < 5e-4
    assert _spread(P[24:36, RIGHT_FOOT]) < 2e-3          # both: ankle exact, ball turned onto its target
    assert _spread(P[10:15, LEFT_FOOT]) < 2e-3


def test_lock_keeps_skeleton_and_other_joints(tmp_path):
    r = sliding_result(tmp_path)
    out = footlock.lock_feet(r, 1.0)
    # joints_world is the FK of the new rotations (bone lengths kept, root and pelvis untouched)
    P = footlock._fk(world_rotations(out.rotations, out.parents), out.root_translation, out.rest_offsets, out.parents)
    assert np.abs(P - out.joints_world).max() < 1e-9
    assert np.allclose(np.linalg.norm(out.rotations, axis=-1), 1.0)
    legs = {1, 2, 4, 5, 7, 8}      # hips, knees, ankles
    for j in range(len(r.joint_names)):
        if j not in legs:
            assert np.array_equal(out.rotations[:, j], r.rotations[:, j]), r.joint_names[j]
    # far from any contact (beyond the blend) nothing changes
    far = [t for t in range(len(r.times)) if t >= 20 + footlock.BLEND_FRAMES + 1 and t < 24 - footlock.BLEND_FRAMES]
    far += list(range(36 + footlock.BLEND_FRAMES + 1, len(r.times)))
    assert np.abs(out.joints_world[far] - r.joints_world[far]).max() < 1e-9
    # no pop at touch-down and lift-off (the fade): the ankle's per-frame step stays of the order of the
    # unlocked motion's. At heel-off (frame 14 -> 15) the ankle may also jump by the mismatch between the
    # ankle and ball targets' distance and the foot's length (contacts that disagree with the motion).
    steps = lambda p: np.linalg.norm(np.diff(p, axis=0), axis=1)  # noqa: E731
    ta, tb = r.joints_world[5:15, LEFT_ANKLE].mean(0), r.joints_world[10:20, LEFT_FOOT].mean(0)
    mismatch = abs(np.linalg.norm(tb - ta) - np.linalg.norm(r.rest_offsets[LEFT_FOOT]))
    for a in (LEFT_ANKLE, RIGHT_ANKLE):
        got, unlocked = steps(out.joints_world[:, a]), steps(r.joints_world[:, a]).max()
        allowed = np.full(len(got), 2 * unlocked + 0.01)
        if a == LEFT_ANKLE:
            allowed[14] += 2 * mismatch
        assert np.all(got < allowed), (a, got.round(3), mismatch)


def test_strength(tmp_path):
    r = sliding_result(tmp_path)
    assert footlock.lock_feet(r, 0.0) is r
    full = footlock.lock_feet(r, 1.0)
    half = footlock.lock_feet(r, 0.5)
    a = LEFT_ANKLE
    want = r.joints_world[5:15, a] + 0.5 * (full.joints_world[5:15, a] - r.joints_world[5:15, a])
    assert np.abs(half.joints_world[5:15, a] - want).max() < 1e-6
    none = dataclasses.replace(r, foot_contacts=np.zeros_like(r.foot_contacts))
    assert footlock.lock_feet(none, 1.0) is none


@pytest.mark.parametrize("strength", [1.0])
def test_unreachable_goal_is_clamped_not_broken(tmp_path, strength):
    r = sliding_result(tmp_path)
    far = dataclasses.replace(r, root_translation=r.root_translation + np.linspace(0, 3, len(r.times))[:, None]
                              * np.array([1.0, 0.0, 0.0]))
    far = dataclasses.replace(far, joints_world=footlock._fk(world_rotations(far.rotations, far.parents),
                                                             far.root_translation, far.rest_offsets, far.parents))
    out = footlock.lock_feet(far, strength)
    assert np.all(np.isfinite(out.rotations)) and np.all(np.isfinite(out.joints_world))
