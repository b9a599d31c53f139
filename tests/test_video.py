"""Tests for engine.video: tiny clips made with PyAV in a temporary folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from engine.errors import EngineError
from engine.video import TimestampSubsampler, VideoReader, iter_frames, probe, processed_size

from media import LEVEL, counter, make_audio, make_clip, write_frames


def video_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "video-decode"]


def assert_error(code: str, path: Path, fn=None):
    with pytest.raises(EngineError) as info:
        (fn or (lambda: list(iter_frames(path))))()
    assert info.value.code == code, info.value.message
    assert path.name in info.value.message
    return info.value


# -- probe and plain decoding ----------------------------------------------------------------------

def test_probe_constant_fps(tmp_path):
    info = probe(make_clip(tmp_path / "c.mp4", n=12, fps=10))
    assert (info.width, info.height, info.display_width, info.display_height) == (64, 48, 64, 48)
    assert info.rotation == 0
    assert info.fps == pytest.approx(10.0)
    assert info.frame_count == 12 and info.frame_count_exact
    assert info.duration == pytest.approx(1.2, abs=0.01)
    assert info.codec == "h264" and not info.has_audio


def test_decode_constant_fps_order_times_and_pixels(tmp_path):
    path = make_clip(tmp_path / "c.mp4", n=12, fps=10)
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(12))
    assert [counter(f.image) for f in frames] == list(range(12))
    np.testing.assert_allclose([f.time for f in frames], np.arange(12) * 0.1, atol=1e-9)
    img = frames[0].image
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3) and img.flags.c_contiguous
    # RGB order: the marker is red.
    r, g, b = img[2, 2].astype(int)
    assert r > 200 and g < 50 and b < 50
    assert video_threads() == []


def test_variable_frame_rate_keeps_real_timestamps(tmp_path):
    pts = [0, 100, 150, 400, 420, 700, 1000, 1010, 1200, 1500]
    path = make_clip(tmp_path / "vfr.mp4", n=len(pts), pts_ms=pts)
    frames = list(iter_frames(path))
    np.testing.assert_allclose([f.time for f in frames], np.array(pts) / 1000.0, atol=1e-6)
    assert [counter(f.image) for f in frames] == list(range(len(pts)))


def test_mkv_and_other_codec(tmp_path):
    frames = list(iter_frames(make_clip(tmp_path / "m.mkv", n=6, codec="mpeg4")))
    assert [counter(f.image) for f in frames] == list(range(6))
    np.testing.assert_allclose([f.time for f in frames], np.arange(6) * 0.1, atol=1e-6)


# -- rotation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_tag_is_applied(tmp_path, degrees):
    path = make_clip(tmp_path / f"r{degrees}.mp4", n=4, rotation=degrees)
    info = probe(path)
    assert info.rotation == degrees
    portrait = degrees in (90, 270)
    assert (info.display_width, info.display_height) == ((48, 64) if portrait else (64, 48))
    frames = list(iter_frames(path))
    assert [counter(f.image) for f in frames] == list(range(4))
    img = frames[0].image
    assert img.shape == ((64, 48, 3) if portrait else (48, 64, 3))
    # The red marker (top-left of the stored frame) after a counter-clockwise rotation.
    corner = {90: (-3, 2), 180: (-3, -3), 270: (2, -3)}[degrees]
    assert img[corner][0] > 200 and img[2, 2][0] < 100
    # Independent oracle: OpenCV applies the same tag when asked to (it does not by default here).
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    ok, bgr = cap.read()
    cap.release()
    assert ok
    assert bgr.shape == img.shape
    assert np.abs(bgr[..., ::-1].astype(int) - img.astype(int)).mean() < 3


# -- errors ---------------------------------------------------------------------------------------

def test_missing_path_and_directory(tmp_path):
    assert_error("input_not_found", tmp_path / "nope.mp4", lambda: probe(tmp_path / "nope.mp4"))
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    assert_error("input_not_found", folder)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    assert_error("invalid_video", path)


def test_truncated_mp4_without_index(tmp_path):
    data = make_clip(tmp_path / "full.mp4", n=20).read_bytes()  # moov atom at the end
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    assert_error("invalid_video", path, lambda: probe(path))


def test_audio_only(tmp_path):
    assert_error("no_frames", make_audio(tmp_path / "sound.m4a"))
    path = make_audio(tmp_path / "sound.mp4")
    error = assert_error("no_frames", path, lambda: probe(path))
    assert "audio" in error.message


def test_empty_container(tmp_path):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()  # header only, no frame
    assert path.stat().st_size > 0
    assert_error("no_frames", path)


def test_video_stream_without_any_frame(tmp_path):
    src = make_clip(tmp_path / "src.mkv", n=5)
    with av.open(str(src)) as c:
        first = next(p.pos for p in c.demux(c.streams.video[0]) if p.size)
    path = tmp_path / "headers_only.mkv"
    path.write_bytes(src.read_bytes()[:first])  # the header survives, every packet is cut
    with av.open(str(path)) as c:
        assert len(c.streams.video) == 1
    assert_error("no_frames", path)


def test_video_too_large(tmp_path):
    path = make_clip(tmp_path / "wide.mkv", n=1, size=(8208, 16), codec="ffv1", marker=False)
    assert_error("video_too_large", path, lambda: probe(path))


def test_truncated_faststart_mp4_keeps_frames_and_warns(tmp_path):
    rng = np.random.default_rng(0)
    images = []
    for i in range(20):
        img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # noise: big packets
        img[24:] = LEVEL * i
        images.append(img)
    path = write_frames(tmp_path / "fs.mp4", images, container_options={"movflags": "faststart"})  # index first
    data = path.read_bytes()
    cut = tmp_path / "fs_cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    assert probe(cut).frame_count == 20
    seen: list[tuple[str, str]] = []
    reader = VideoReader(cut, on_warning=lambda code, msg: seen.append((code, msg)))
    frames = list(reader)
    assert 3 <= len(frames) < 18
    assert [counter(f.image) for f in frames] == list(range(len(frames)))
    assert [c for c, _ in seen] == ["video_truncated"] and reader.warnings == seen
    assert "fs_cut.mp4" in seen[0][1]


def test_mid_stream_decode_error_keeps_good_frames(tmp_path):
    src = make_clip(tmp_path / "mj.avi", n=20, codec="mjpeg", pix_fmt="yuvj420p")
    with av.open(str(src)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(src.read_bytes())
    pos, size = packets[10]
    data[pos:pos + size] = bytes(size)  # the 11th JPEG becomes zeros: the decoder rejects it
    path = tmp_path / "broken.avi"
    path.write_bytes(bytes(data))
    seen: list[tuple[str, str]] = []
    frames = list(iter_frames(path, on_warning=lambda code, msg: seen.append((code, msg))))
    assert [counter(f.image) for f in frames] == list(range(10))
    assert [c for c, _ in seen] == ["decode_error"]
    assert "broken.avi" in seen[0][1]


# -- selection: range, fps, scale -----------------------------------------------------------------

def test_frame_and_time_ranges(tmp_path):
    path = make_clip(tmp_path / "c.mp4", n=12, fps=10)
    assert [f.index for f in iter_frames(path, start_frame=3, end_frame=7)] == [3, 4, 5, 6]
    frames = list(iter_frames(path, start_time=0.25, end_time=0.65))
    assert [f.index for f in frames] == [3, 4, 5, 6]
    assert [counter(f.image) for f in frames] == [3, 4, 5, 6]
    assert [f.index for f in iter_frames(path, start_frame=10)] == [10, 11]
    assert VideoReader(path, start_frame=3, end_frame=7).expected_frames == 4


def test_empty_ranges(tmp_path):
    path = make_clip(tmp_path / "c.mp4", n=12, fps=10)
    assert_error("no_frames", path, lambda: VideoReader(path, start_frame=5, end_frame=5))
    assert_error("no_frames", path, lambda: VideoReader(path, start_frame=12))
    assert_error("no_frames", path, lambda: VideoReader(path, start_time=5.0))
    # Not empty by construction, but no frame falls between 0.41 s and 0.49 s.
    assert_error("no_frames", path, lambda: list(iter_frames(path, start_time=0.41, end_time=0.49)))


def test_target_fps_subsamples_without_inventing(tmp_path):
    path = make_clip(tmp_path / "c30.mp4", n=30, fps=30)
    frames = list(iter_frames(path, fps=10))
    assert [f.index for f in frames] == list(range(0, 30, 3))
    np.testing.assert_allclose([f.time for f in frames], np.arange(0, 30, 3) / 30, atol=1e-6)
    assert [counter(f.image) for f in frames] == list(range(0, 30, 3))
    # Above the source rate: every frame once, none repeated.
    assert [f.index for f in iter_frames(path, fps=60)] == list(range(30))
    # Combined with a range: targets start at the first frame in range.
    assert [f.index for f in iter_frames(path, fps=15, start_frame=5, end_frame=12)] == [5, 7, 9, 11]


def test_target_fps_on_variable_frame_rate(tmp_path):
    pts = [0, 100, 150, 400, 420, 700, 1000, 1010, 1200, 1500]
    path = make_clip(tmp_path / "vfr.mp4", n=len(pts), pts_ms=pts)
    frames = list(iter_frames(path, fps=4))  # targets 0, .25, .5, .75, 1.0, 1.25, 1.5 s
    # .25 -> 150 ms (nearer than 400); .5 -> 420; .75 -> 700; 1.0 -> 1000; 1.25 -> 1200; 1.5 -> 1500.
    assert [round(f.time * 1000) for f in frames] == [0, 150, 420, 700, 1000, 1200, 1500]
    assert len({f.index for f in frames}) == len(frames)


def test_subsampler_matches_brute_force_nearest_frames():
    """Output = the frames nearest to some target t0 + k/fps (ties: earlier frame), each once."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 50))
        times = np.cumsum(rng.exponential(rng.uniform(0.01, 0.2), n)) + rng.uniform(0, 5)
        fps, frame_duration = rng.uniform(1, 40), rng.uniform(0.01, 0.1)
        sub = TimestampSubsampler(fps)
        out = []
        for index, t in enumerate(times):
            out += sub.push(float(t), index)
        out += sub.finish(frame_duration)
        targets = np.arange(times[0], times[-1] + frame_duration - 1e-6, 1 / fps)
        expected = sorted({int(np.argmin(np.abs(times - x))) for x in targets})
        assert out == expected


def test_downscale_long_frames(tmp_path):
    w, h = 3000, 200
    img = np.zeros((h, w, 3), np.uint8)
    img[:, 1400:1600] = 255  # a white band around x = 1500
    path = write_frames(tmp_path / "wide.mp4", [img, img])
    reader = VideoReader(path)  # max_side 1280 by default
    assert (reader.width, reader.height) == processed_size(w, h, 1280) == (1280, 85)
    frames = list(reader)
    assert len(frames) == 2 and frames[0].image.shape == (85, 1280, 3)
    band = np.flatnonzero(frames[0].image[40, :, 0] > 128)
    centre = reader.to_display(np.array([band.mean(), 40.0]))
    assert centre[0] == pytest.approx(1500, abs=6)
    np.testing.assert_allclose(reader.to_display(np.array([[1280, 85]])), [[3000, 200]])
    # No scaling when disabled, or when already small enough.
    assert VideoReader(path, max_side=None).width == 3000
    assert processed_size(640, 480, 1280) == (640, 480)


def test_downscale_rotated_portrait(tmp_path):
    path = make_clip(tmp_path / "r.mp4", n=2, size=(320, 240), rotation=90)
    frames = list(iter_frames(path, max_side=160))
    assert frames[0].image.shape == (160, 120, 3)   # portrait, longest side 160
    assert frames[0].image[-3, 2, 0] > 200          # marker at the bottom-left


# -- threading and cancellation -----------------------------------------------------------------

def test_stopping_early_joins_the_thread(tmp_path):
    path = make_clip(tmp_path / "c.mp4", n=30, fps=30)
    reader = VideoReader(path, queue_size=2)
    got = []
    for frame in reader:
        got.append(frame.index)
        if len(got) == 3:
            break
    assert got == [0, 1, 2]
    assert video_threads() == []
    assert reader.frames_decoded < 30
    with pytest.raises(RuntimeError):
        next(iter(reader))  # single use


def test_consumer_exception_and_context_manager_stop_the_thread(tmp_path):
    path = make_clip(tmp_path / "c.mp4", n=30, fps=30)
    with pytest.raises(KeyError):
        with VideoReader(path, queue_size=1) as reader:
            for frame in reader:
                if frame.index == 1:
                    raise KeyError("consumer failed")
    assert video_threads() == []
    gen = iter_frames(path, queue_size=1)
    assert next(gen).index == 0
    gen.close()
    assert video_threads() == []


def test_close_from_another_thread_ends_the_iteration(tmp_path):
    path = make_clip(tmp_path / "c.mp4", n=30, fps=30)
    reader = VideoReader(path, queue_size=1)
    frames = iter(reader)
    assert next(frames).index == 0
    closer = threading.Thread(target=reader.close)
    closer.start()
    closer.join(timeout=10)
    assert video_threads() == []
    assert len(list(frames)) <= 2  # ends quietly (at most what was in flight)


def test_accepts_pathlike_and_str(tmp_path):
    path = make_clip(tmp_path / "c.mp4", n=3)
    assert probe(str(path)) == probe(path)
    assert os.fspath(probe(path).path) == str(path)


# -- real footage (skipped when the shared data is absent) ---------------------------------------

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


@pytest.mark.skipif(not (REAL / "v08_mmhuman3d_single-person.mp4").exists(),
                    reason=f"SHARED DATA MISSING: {REAL}: real portrait footage NOT tested")
def test_real_portrait_clip_first_frames():
    reader = VideoReader(REAL / "v08_mmhuman3d_single-person.mp4", end_frame=3)
    assert reader.info.display_height > reader.info.display_width
    frames = list(reader)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].image.shape == (1280, 720, 3)
    np.testing.assert_allclose([f.time for f in frames], np.arange(3) / 12, atol=1e-6)
