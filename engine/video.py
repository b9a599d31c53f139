"""Video decoding: stream RGB frames with their real timestamps, decoded in a background thread.

Two entry points:

- :func:`probe` reads the stream information (:class:`VideoInfo`) and checks that the file really is
  a decodable video; it raises :class:`EngineError` with a code from ``engine/errors.py``.
- :class:`VideoReader` (or the :func:`iter_frames` shortcut) yields :class:`DecodedFrame` items one by
  one: an RGB ``uint8`` image ``(H, W, 3)`` in *display* orientation (the container's rotation tag
  applied), the time in seconds from the stream start (``pts * time_base``: variable frame rate is
  kept) and the index of the frame in decoding order. The whole video is never held in memory.

Decoding (and colour conversion, scaling, rotation) runs in a worker thread that fills a small bounded
queue, so it overlaps the consumer's work (pose estimation). When the consumer stops iterating, or
calls :meth:`VideoReader.close`, the worker stops within one frame, closes the container and is joined.

Rotation: FFmpeg exposes the display matrix as per-frame side data; PyAV's ``VideoFrame.rotation``
returns the angle by which the frame must be rotated *counter-clockwise* for display (the value that
``ffmpeg -display_rotation`` and ``VideoStream.set_display_rotation`` write). Flips in the matrix are
ignored (phones do not write them).

Scaling: frames whose longest displayed side exceeds ``max_side`` are downscaled (area filter) by
FFmpeg's swscale in the same call that converts YUV to RGB; on this machine that is as fast as or
faster than ``to_ndarray`` + ``cv2.resize(INTER_AREA)``. Map processed pixel coordinates back to
display pixels with :meth:`VideoReader.to_display`.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from .errors import EngineError

log = logging.getLogger(__name__)

MAX_VIDEO_SIDE = 8192       # longest coded side the engine accepts (error code video_too_large)
DEFAULT_MAX_SIDE = 1280     # frames whose longest displayed side exceeds this are downscaled
DEFAULT_QUEUE_SIZE = 8      # decoded frames buffered ahead of the consumer

WarningCallback = Callable[[str, str], None]   # (code, message)

# Counter-clockwise display rotation -> cv2.rotate flag.
_CV2_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video's first video stream."""

    path: str
    width: int                  # stored frame size, before rotation (e.g. 1920x1088)
    height: int
    display_width: int          # size as displayed, after the rotation tag is applied
    display_height: int
    rotation: int               # counter-clockwise degrees applied for display: 0, 90, 180 or 270
    fps: float                  # average frame rate; 0.0 when the container gives no way to know it
    duration: float | None      # seconds, None when unknown
    frame_count: int | None     # number of frames: exact when frame_count_exact, else an estimate
    frame_count_exact: bool     # True when the container's index states the count
    codec: str                  # decoder name, e.g. "h264"
    has_audio: bool


@dataclass(frozen=True)
class DecodedFrame:
    """One output frame."""

    index: int                  # index of the source frame in decoding (presentation) order, from 0
    time: float                 # seconds from the start of the stream (real timestamp)
    image: np.ndarray           # (H, W, 3) uint8 RGB, display orientation, possibly downscaled


def _name(path: str) -> str:
    return os.path.basename(os.fspath(path)) or os.fspath(path)


def _open(path: str) -> Any:
    """Open ``path`` with PyAV, turning failures into EngineError."""
    if not os.path.exists(path):
        raise EngineError("input_not_found", f"The video file '{path}' does not exist.")
    if not os.path.isfile(path):
        raise EngineError("input_not_found", f"'{path}' is not a file (it is a folder or a device).")
    try:
        return av.open(path, mode="r")
    except PermissionError as exc:
        raise EngineError("invalid_video", f"The video '{_name(path)}' cannot be read: {exc.strerror}.") from exc
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise EngineError("invalid_video", f"'{_name(path)}' is not a readable video file "
                                           "(unknown format, or the file is corrupt or incomplete).") from exc


def _rate(value: Fraction | None) -> float:
    return float(value) if value else 0.0


def _rotation_of(frame: av.VideoFrame) -> int:
    """The frame's display rotation, counter-clockwise, snapped to 0/90/180/270."""
    try:
        angle = frame.rotation
    except (AttributeError, ValueError, TypeError):  # no display matrix, or an odd one
        return 0
    if angle is None or (isinstance(angle, float) and math.isnan(angle)):
        return 0
    return int(round(angle / 90.0)) % 4 * 90


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read the video's stream information; decodes its first frame to check it and read the rotation.

    Raises EngineError: ``input_not_found``, ``invalid_video``, ``no_frames`` (no video stream, or no
    decodable frame) or ``video_too_large`` (longest side over ``MAX_VIDEO_SIDE``).
    """
    path = os.fspath(path)
    name = _name(path)
    container = _open(path)
    try:
        if not container.streams.video:
            raise EngineError("no_frames", f"'{name}' has no video stream (is it an audio file?).")
        stream = container.streams.video[0]
        width, height = int(stream.width or 0), int(stream.height or 0)
        if max(width, height) > MAX_VIDEO_SIDE:
            raise EngineError("video_too_large", f"The video '{name}' is {width}x{height}; the engine accepts "
                                                 f"at most {MAX_VIDEO_SIDE} pixels on the longest side.")
        # Duration: the stream's, else the container's.
        duration: float | None = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        fps = _rate(stream.average_rate) or _rate(stream.guessed_rate)
        frame_count_exact = bool(stream.frames and stream.frames > 0)
        frame_count: int | None = int(stream.frames) if frame_count_exact else None
        if frame_count is None and duration and fps:
            frame_count = max(1, round(duration * fps))
        if not fps and frame_count_exact and duration:
            fps = frame_count / duration
        codec = stream.codec_context.name
        has_audio = bool(container.streams.audio)

        first = _first_frame(container, stream, name)
        if width <= 0 or height <= 0:
            width, height = first.width, first.height
            if max(width, height) > MAX_VIDEO_SIDE:
                raise EngineError("video_too_large", f"The video '{name}' is {width}x{height}; the engine "
                                                     f"accepts at most {MAX_VIDEO_SIDE} pixels on the longest side.")
        rotation = _rotation_of(first)
    except (AttributeError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        # a damaged header: PyAV exposes a stream without the attributes of a video stream
        raise EngineError("invalid_video", f"'{name}' is not a readable video file (its stream information "
                                           "is damaged).") from exc
    finally:
        container.close()
    display_width, display_height = (height, width) if rotation in (90, 270) else (width, height)
    return VideoInfo(path=path, width=width, height=height, display_width=display_width,
                     display_height=display_height, rotation=rotation, fps=float(fps), duration=duration,
                     frame_count=frame_count, frame_count_exact=frame_count_exact, codec=codec,
                     has_audio=has_audio)


def _first_frame(container: Any, stream: Any, name: str) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise EngineError("invalid_video", f"The video '{name}' could not be decoded "
                                           "(the file is corrupt or uses an unsupported codec).") from exc
    raise EngineError("no_frames", f"The video '{name}' contains no decodable frames.")


def processed_size(display_width: int, display_height: int, max_side: int | None) -> tuple[int, int]:
    """Size (width, height) of the processed frames: the display size, downscaled so that the longest
    side is at most ``max_side`` (no upscaling; None or 0 disables scaling)."""
    longest = max(display_width, display_height)
    if not max_side or longest <= max_side:
        return display_width, display_height
    s = max_side / longest
    return max(1, round(display_width * s)), max(1, round(display_height * s))


class TimestampSubsampler:
    """Streaming subsampler: keeps, for each target time ``t0 + k / fps``, the nearest source frame.

    ``t0`` is the time of the first frame pushed; targets run up to the end of the last frame's
    display time. The output is exactly the set of frames that are nearest to some target (ties go to
    the earlier frame), in order, each once: frames are never invented or repeated, so above the
    source rate every frame comes out and a gap in a variable-rate video stays a gap. Push frames in
    time order; ``push`` returns the items that became final, ``finish`` the last one if it is kept.
    """

    def __init__(self, fps: float):
        assert fps > 0, f"fps must be positive, got {fps}"
        self.step = 1.0 / fps
        self._t0: float | None = None
        self._k = 0                                   # index of the next target time
        self._prev: tuple[float, Any] | None = None   # the previous frame ...
        self._prev_out = False                        # ... and whether it was output

    def _target(self) -> float:
        assert self._t0 is not None
        return self._t0 + self._k * self.step

    def push(self, t: float, item: Any) -> list[Any]:
        if self._t0 is None:
            self._t0 = t
        out: list[Any] = []
        cur_out = False
        # Every target in (prev.t, t] has its nearest frame among prev and this one. The targets are
        # counted, not walked one by one (at --fps 1e9 there would be billions between two frames):
        # estimates by division, settled with the exact per-target tests.
        t0, step = self._t0, self.step
        assert t0 is not None

        def due(k: int) -> bool:             # target k is at or before this frame
            return t0 + k * step <= t + 1e-9

        def to_prev(k: int) -> bool:         # target k is nearer to the previous frame (ties: earlier)
            target = t0 + k * step
            return self._prev is not None and target - self._prev[0] <= t - target

        k0 = self._k
        k_end = max(k0, math.floor((t + 1e-9 - t0) / step) + 1)   # first target after t
        while k_end > k0 and not due(k_end - 1):
            k_end -= 1
        while due(k_end):
            k_end += 1
        if k_end > k0:
            split = k0                         # first target that goes to this frame
            if self._prev is not None:
                mid = 0.5 * (self._prev[0] + t)
                split = min(k_end, max(k0, math.floor((mid - t0) / step) + 1))
                while split > k0 and not to_prev(split - 1):
                    split -= 1
                while split < k_end and to_prev(split):
                    split += 1
            if split > k0 and not self._prev_out:
                assert self._prev is not None
                out.append(self._prev[1])
                self._prev_out = True
            if split < k_end:
                out.append(item)
                cur_out = True
            self._k = k_end
        self._prev, self._prev_out = (t, item), cur_out
        return out

    def finish(self, frame_duration: float) -> list[Any]:
        """The last frame, if not output yet and a target falls within its display time."""
        prev, self._prev = self._prev, None
        if prev is not None and not self._prev_out and self._target() < prev[0] + frame_duration - 1e-6:
            return [prev[1]]
        return []


class VideoReader:
    """Decode a video in a background thread; iterate to get :class:`DecodedFrame` items.

    Frame selection, applied in this order:

    - range: keep source frames with ``start_frame <= index < end_frame`` and
      ``start_time <= time < end_time`` (any bound may be None). Frames before the range are decoded
      (to count indices) but not converted.
    - ``fps``: subsample by timestamp to about this rate. Target times are ``t0 + k / fps`` where
      ``t0`` is the time of the first frame in range; each target takes the source frame nearest to
      it. A source frame is output at most once, so frames are never invented or repeated: above the
      source rate every frame is output, and gaps in a variable-rate video stay gaps.

    Errors (EngineError) are raised by the constructor (``probe``'s codes and ``no_frames`` for a range
    that is empty by construction) or during iteration: ``invalid_video`` if decoding fails before any
    frame came out, ``no_frames`` if no frame fell in the range. A decoding error after some good
    frames ends the iteration early with a warning (``decode_error``); a stream that ends well before
    the frame count in the container's index gives a warning ``video_truncated``. Warnings are
    appended to :attr:`warnings` and passed to ``on_warning(code, message)``, both in the consumer's
    thread, before the iteration ends.

    Use as a context manager, or just iterate: leaving the ``for`` loop (break, exception, garbage
    collection of the iterator) stops the worker, closes the file and joins the thread. A reader is
    iterated once.
    """

    def __init__(self, path: str | os.PathLike[str], *, start_frame: int | None = None,
                 end_frame: int | None = None, start_time: float | None = None,
                 end_time: float | None = None, fps: float | None = None,
                 max_side: int | None = DEFAULT_MAX_SIDE, queue_size: int = DEFAULT_QUEUE_SIZE,
                 on_warning: WarningCallback | None = None, info: VideoInfo | None = None):
        self.info = info if info is not None else probe(path)
        self.path = self.info.path
        name = _name(self.path)
        if start_frame is not None and start_frame < 0:
            raise EngineError("usage", f"start_frame must be >= 0, got {start_frame}.")
        if fps is not None and not (fps > 0 and math.isfinite(fps)):
            raise EngineError("usage", f"The target frame rate must be a positive number, got {fps}.")
        if max_side is not None and max_side < 0:
            raise EngineError("usage", f"max_side must be positive (or None to keep full size), got {max_side}.")
        self.start_frame = start_frame or 0
        self.end_frame = end_frame
        self.start_time = start_time
        self.end_time = end_time
        self.target_fps = fps
        if ((end_frame is not None and end_frame <= self.start_frame)
                or (start_time is not None and end_time is not None and end_time <= start_time)
                or (self.info.frame_count_exact and self.info.frame_count is not None
                    and self.start_frame >= self.info.frame_count)
                or (start_time is not None and self.info.duration is not None
                    and start_time >= self.info.duration)):
            raise EngineError("no_frames", f"The requested frame range of '{name}' is empty "
                                           f"({self._range_text()}).")

        # Processed frame size (display orientation) and the coded-orientation size swscale produces.
        self.width, self.height = processed_size(self.info.display_width, self.info.display_height,
                                                  max_side)
        rotated = self.info.rotation in (90, 270)
        self._sws_size = (self.height, self.width) if rotated else (self.width, self.height)
        self._scaled = (self.width, self.height) != (self.info.display_width, self.info.display_height)

        self.on_warning = on_warning
        self.warnings: list[tuple[str, str]] = []
        self.frames_decoded = 0        # source frames decoded so far (including skipped ones)
        self.frames_output = 0
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    # -- public helpers -----------------------------------------------------------------------
    @property
    def expected_frames(self) -> int | None:
        """About how many frames the iteration will output (for progress totals), or None."""
        info = self.info
        if info.frame_count is None:
            return None
        lo, hi = self.start_frame, info.frame_count
        if self.end_frame is not None:
            hi = min(hi, self.end_frame)
        if info.fps:
            if self.start_time is not None:
                lo = max(lo, math.ceil(self.start_time * info.fps))
            if self.end_time is not None:
                hi = min(hi, math.ceil(self.end_time * info.fps))
        n = max(0, hi - lo)
        if self.target_fps and info.fps and self.target_fps < info.fps:
            n = math.ceil(n * self.target_fps / info.fps)
        return n

    def to_display(self, xy: np.ndarray) -> np.ndarray:
        """Map pixel coordinates ``(..., 2)`` (x, y) in processed frames to display-frame pixels."""
        xy = np.asarray(xy, dtype=np.float64)
        factor = np.array([self.info.display_width / self.width, self.info.display_height / self.height])
        return xy * factor

    # -- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[DecodedFrame]:
        if self._started:
            raise RuntimeError("a VideoReader can be iterated only once")
        self._started = True
        self._thread = threading.Thread(target=self._work, name="video-decode", daemon=True)
        self._thread.start()
        try:
            while True:
                try:
                    kind, payload = self._queue.get(timeout=0.5)
                except queue.Empty:
                    if self._thread.is_alive():
                        continue
                    if self._stop.is_set():  # close() was called from another thread
                        return
                    raise RuntimeError("the video decoding thread ended without a result") from None
                if kind == "frame":
                    self.frames_output += 1
                    yield payload
                elif kind == "warning":
                    self.warnings.append(payload)
                    if self.on_warning is not None:
                        self.on_warning(*payload)
                elif kind == "error":
                    raise payload
                else:  # "end"
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker, drop buffered frames and join the thread (safe to call twice)."""
        self._stop.set()
        self._drain()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10.0)
            if thread.is_alive():  # pragma: no cover - a decoder stuck inside FFmpeg
                log.warning("video decoding thread did not stop within 10 s")
        self._drain()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    # -- worker -------------------------------------------------------------------------------
    def _put(self, kind: str, payload: Any) -> bool:
        """Queue an item; False when stopping (the consumer went away)."""
        while not self._stop.is_set():
            try:
                self._queue.put((kind, payload), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _range_text(self) -> str:
        parts = []
        if self.start_frame or self.end_frame is not None:
            parts.append(f"frames {self.start_frame} to {'end' if self.end_frame is None else self.end_frame}")
        if self.start_time is not None or self.end_time is not None:
            lo = 0.0 if self.start_time is None else self.start_time
            hi = "end" if self.end_time is None else f"{self.end_time:g} s"
            parts.append(f"times {lo:g} s to {hi}")
        return ", ".join(parts) or "whole video"

    def _work(self) -> None:
        try:
            self._decode_loop()
        except EngineError as exc:
            self._put("error", exc)
        except BaseException as exc:  # forwarded to the consumer, which re-raises it
            self._put("error", exc)
        finally:
            self._put("end", None)

    def _convert(self, frame: av.VideoFrame, reformatter: VideoReformatter) -> np.ndarray:
        w, h = self._sws_size
        if self._scaled:
            out = reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA")
        else:
            out = reformatter.reformat(frame, format="rgb24")
        image = out.to_ndarray()
        if image.shape[:2] != (h, w):  # a stream whose size changes mid-way: keep one output size
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        rot = _CV2_ROTATE.get(self.info.rotation)
        if rot is not None:
            image = cv2.rotate(image, rot)
        return np.ascontiguousarray(image)

    def _decode_loop(self) -> None:
        name = _name(self.path)
        container = _open(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = stream.time_base or Fraction(1, 1)
            origin = stream.start_time           # stream start in time_base units (None: first pts)
            frame_dt = 1.0 / self.info.fps if self.info.fps else 1.0 / 30.0
            reformatter = VideoReformatter()
            subsampler = TimestampSubsampler(self.target_fps) if self.target_fps else None

            decoded = 0
            last_time = -math.inf
            natural_end = True
            sent = 0

            def emit(index: int, t: float, frame: av.VideoFrame) -> bool:
                nonlocal sent
                image = self._convert(frame, reformatter)
                sent += 1
                return self._put("frame", DecodedFrame(index=index, time=t, image=image))

            frames = container.decode(stream)
            while not self._stop.is_set():
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
                    if decoded == 0:
                        raise EngineError("invalid_video", f"The video '{name}' could not be decoded "
                                                           "(the file is corrupt or uses an unsupported "
                                                           "codec).") from exc
                    self._put("warning", ("decode_error",
                                          f"Decoding '{name}' failed after frame {decoded - 1} "
                                          f"({last_time:.2f} s); the rest of the video is skipped."))
                    natural_end = False
                    break
                index = decoded
                decoded += 1
                self.frames_decoded = decoded
                if frame.pts is not None:
                    if origin is None:
                        origin = frame.pts
                    t = float((frame.pts - origin) * time_base)
                else:  # no timestamp: assume the average rate after the previous frame
                    t = 0.0 if last_time == -math.inf else last_time + frame_dt
                last_time = t

                # Range.
                if index < self.start_frame or (self.start_time is not None and t < self.start_time):
                    continue
                if ((self.end_frame is not None and index >= self.end_frame)
                        or (self.end_time is not None and t >= self.end_time)):
                    natural_end = False
                    break

                if subsampler is None:
                    if not emit(index, t, frame):
                        return
                    continue
                for chosen in subsampler.push(t, (index, t, frame)):
                    if not emit(*chosen):
                        return
            else:
                return  # stopped by the consumer

            if subsampler is not None:
                for chosen in subsampler.finish(frame_dt):
                    if not emit(*chosen):
                        return

            self._check_end(name, decoded, sent, last_time, natural_end)
        finally:
            container.close()

    def _check_end(self, name: str, decoded: int, sent: int, last_time: float, natural_end: bool) -> None:
        """After the last frame: errors for nothing decoded or nothing in range, a warning for a file that
        ended well before the frame count its header declares."""
        if decoded == 0:
            raise EngineError("no_frames", f"The video '{name}' contains no decodable frames.")
        if sent == 0:
            raise EngineError("no_frames", f"No frame of '{name}' falls in the requested range "
                                           f"({self._range_text()}); the video has {decoded} frames "
                                           f"up to {max(last_time, 0.0):.2f} s.")
        declared = self.info.frame_count if self.info.frame_count_exact else None
        if natural_end and declared is not None and decoded < 0.95 * declared - 1:
            self._put("warning", ("video_truncated",
                                  f"Only {decoded} of the {declared} frames of '{name}' could be "
                                  "decoded; the file may be incomplete."))


def iter_frames(path: str | os.PathLike[str], **options: Any) -> Iterator[DecodedFrame]:
    """Shortcut: ``VideoReader(path, **options)`` iterated; closing this generator stops decoding."""
    reader = VideoReader(path, **options)
    try:
        yield from reader
    finally:
        reader.close()
