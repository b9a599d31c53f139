"""Lost frames and shots for the animator (addon/core/shots.py; no Blender): the ranges, the markers'
names and frames, one shot cut out of a result, and the reader's handling of the optional fields."""

from __future__ import annotations

import numpy as np
import pytest

from addon.core import rig, shots
from addon.core.result import ResultError, read_result

import fake_engine  # noqa: E402  (tests/ is on pytest.ini's pythonpath)


def _result(tmp_path, frames=40, lost=None, shot=None, name="r.npz"):
    base = tmp_path / ("base_" + name)
    data = fake_engine.make_result(base, frames=frames, seed=4, fps=24.0)
    data = dict(np.load(base, allow_pickle=False))
    if lost is not None:
        data["lost"] = np.asarray(lost)
    if shot is not None:
        data["shot"] = np.asarray(shot)
    np.savez(tmp_path / name, **data)
    return read_result(tmp_path / name), data


def test_ranges():
    assert shots.ranges([]) == []
    assert shots.ranges([False, False]) == []
    assert shots.ranges([True]) == [(0, 0)]
    assert shots.ranges([0, 1, 1, 0, 0, 1, 0, 1, 1, 1]) == [(1, 2), (5, 5), (7, 9)]
    m = np.random.default_rng(0).random(500) < 0.3
    r = shots.ranges(m)
    back = np.zeros(500, bool)
    for a, b in r:
        assert a <= b and m[a:b + 1].all()
        back[a:b + 1] = True
    np.testing.assert_array_equal(back, m)
    assert all(r[i][1] + 1 < r[i + 1][0] for i in range(len(r) - 1))   # maximal runs, never adjacent


def test_markers_for_lost_ranges_and_cuts(tmp_path):
    T = 40
    lost = np.zeros(T, bool)
    lost[5:12] = True
    lost[30] = True
    lost[38:] = True
    shot = (np.arange(T) >= 20).astype(np.int32)
    res, _ = _result(tmp_path, T, lost, shot)
    assert res.cuts == (20,) and shots.shot_count(res) == 2
    frames = rig.key_frames(res.times, 24.0, 1)            # scene frames 1..40
    marks = shots.markers(res, frames)
    assert marks == [("lost 6-12", 6), ("cut", 21), ("lost 31", 31), ("lost 39-40", 39)]
    # at another scene rate the names follow the scene's frames (what the timeline shows)
    marks2 = shots.markers(res, rig.key_frames(res.times, 48.0, 100))
    assert marks2[0] == ("lost 110-122", 110) and ("cut", 140) in marks2
    with pytest.raises(ValueError):
        shots.markers(res, frames[:-1])


def test_no_markers_without_the_optional_fields(tmp_path):
    res, _ = _result(tmp_path, 20)
    assert res.lost is None and res.shot is None and res.cuts == ()
    assert shots.markers(res, np.arange(20)) == [] and shots.shot_count(res) == 1
    assert shots.select_shot(res, 1) is res and shots.select_shot(res, 0) is res
    with pytest.raises(ResultError, match="no shot 2"):
        shots.select_shot(res, 2)


def test_select_shot_cuts_every_per_frame_array(tmp_path):
    T = 30
    shot = np.r_[np.zeros(10), np.ones(12), np.full(8, 2)].astype(np.int64)
    lost = np.zeros(T, bool)
    lost[12:14] = True
    res, data = _result(tmp_path, T, lost, shot)
    assert res.cuts == (10, 22) and shots.shot_count(res) == 3
    two = shots.select_shot(res, 2)
    assert two.frames == 12 and two.cuts == () and shots.shot_count(two) == 1
    np.testing.assert_allclose(two.rotations, res.rotations[10:22])
    np.testing.assert_allclose(two.root_translation, data["root_translation"][10:22])
    np.testing.assert_allclose(two.joints_world, data["joints_world"][10:22])
    np.testing.assert_allclose(two.times, data["times"][10:22])
    np.testing.assert_array_equal(two.lost, lost[10:22])
    assert two.joint_confidence.shape == (12, len(res.joint_names)) and two.foot_contacts.shape[0] == 12
    assert shots.markers(two, rig.key_frames(two.times, 24.0, 1)) == [("lost 3-4", 3)]
    for bad in (-1, 4):
        with pytest.raises(ResultError, match="3 shots"):
            shots.select_shot(res, bad)


@pytest.mark.parametrize("shot", [[1, 1, 1, 1], [0, 2, 2, 2], [0, 1, 0, 1], [0, 0, 0]])
def test_reader_drops_malformed_shot_fields(tmp_path, shot):
    """Shots must start at 0 and step up by one (a damaged field is dropped, never refused)."""
    res, _ = _result(tmp_path, 4, shot=np.asarray(shot), lost=np.zeros(3 if len(shot) == 3 else 5, bool))
    assert res.shot is None and res.cuts == () and res.lost is None
