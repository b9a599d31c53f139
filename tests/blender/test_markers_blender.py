"""Lost frames and shot cuts as timeline markers, and importing one shot (bpy 4.5 module)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from conftest import MODULE

import bpy  # noqa: E402  (conftest set HOME first)

import fake_engine  # noqa: E402

T = 48


@pytest.fixture()
def shot_file(tmp_path):
    """A 48-frame result (24 fps) with two shots (cut at frame 30) and lost frames 10-17 and 40."""
    fake_engine.make_result(tmp_path / "base.npz", frames=T, seed=2, fps=24.0)
    data = dict(np.load(tmp_path / "base.npz", allow_pickle=False))
    lost = np.zeros(T, bool)
    lost[10:18] = True
    lost[40] = True
    data.update(lost=lost, shot=(np.arange(T) >= 30).astype(np.int32), cuts=np.array([30], np.int32))
    np.savez(tmp_path / "shots.npz", **data)
    return tmp_path / "shots.npz"


def _ops_result():
    return importlib.import_module(MODULE + ".addon.blender.ops_result")


def _markers(scene) -> list[tuple[str, int]]:
    return sorted((m.name, m.frame) for m in scene.timeline_markers)


def test_markers_at_lost_ranges_and_cuts(blank, shot_file):
    scene = blank.scene
    scene.frame_start = 1
    scene.timeline_markers.new("mine", frame=5)            # the user's own marker stays
    ok, msg, name = _ops_result().import_result_file(blank, str(shot_file))
    assert ok, msg
    assert _markers(scene) == [("cut", 31), ("lost 11-18", 11), ("lost 41", 41), ("mine", 5)]
    # the markers sit on the frames the keys were written to
    action = bpy.data.objects[name].animation_data.action
    assert action.frame_range[0] == 1 and action.frame_range[1] == T
    # importing the same result again adds no duplicate markers
    ok, msg, _ = _ops_result().import_result_file(blank, str(shot_file))
    assert ok, msg
    assert len(scene.timeline_markers) == 4


def test_import_one_shot(blank, shot_file):
    scene = blank.scene
    scene.frame_start = 1
    r = bpy.ops.import_anim.video_mocap_result('EXEC_DEFAULT', filepath=str(shot_file), shot=2)
    assert r == {'FINISHED'}
    obj = bpy.context.view_layer.objects.active
    action = obj.animation_data.action
    assert tuple(action.frame_range) == (1.0, float(T - 30))       # 18 frames, keyed from the scene start
    assert scene.frame_end == T - 30
    assert _markers(scene) == [("lost 11", 11)]                    # frame 40 of the video = 11th of shot 2
    # a shot the result does not have: an error, nothing added
    before = (sorted(o.name for o in bpy.data.objects), sorted(a.name for a in bpy.data.actions))
    ok, msg, _ = _ops_result().import_result_file(blank, str(shot_file), shot=3)
    assert not ok and "2 shots" in msg
    assert (sorted(o.name for o in bpy.data.objects), sorted(a.name for a in bpy.data.actions)) == before
    assert _markers(scene) == [("lost 11", 11)]


def test_failed_import_adds_no_markers(blank, shot_file, monkeypatch):
    """A failure after the markers were placed (the last step of the import) rolls them back with the
    rest; the user's own markers stay."""
    scene = blank.scene
    scene.timeline_markers.new("mine", frame=3)
    importer = importlib.import_module(MODULE + ".addon.blender.importer")
    real = importer.add_markers

    def add_then_fail(sc, result):
        added = real(sc, result)
        assert len(added) == 3 and len(sc.timeline_markers) == 4   # they were there ...
        raise RuntimeError("boom after the markers")

    monkeypatch.setattr(importer, "add_markers", add_then_fail)
    ok, msg, _ = _ops_result().import_result_file(blank, str(shot_file))
    assert not ok and "boom" in msg
    assert _markers(scene) == [("mine", 3)]                        # ... and are gone again
    assert not bpy.data.actions and [o.name for o in bpy.data.objects] == []
    # a refused target (before anything is applied) adds none either
    monkeypatch.undo()
    bpy.ops.object.empty_add()
    ok, msg, _ = _ops_result().import_result_file(blank, str(shot_file), target=bpy.context.object.name)
    assert not ok and _markers(scene) == [("mine", 3)]
