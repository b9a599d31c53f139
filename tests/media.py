"""Tiny media files made with PyAV for tests (no binary fixtures in the repository)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MS = Fraction(1, 1000)
LEVEL = 8  # frame i is filled with grey level LEVEL * i (a counter visible in the pixels)


def make_clip(path: Path, n: int = 12, *, size: tuple[int, int] = (64, 48), fps: int = 10,
              pts_ms: list[int] | None = None, rotation: int | None = None, codec: str = "libx264",
              pix_fmt: str = "yuv420p", container_options: dict[str, str] | None = None,
              marker: bool = True) -> Path:
    """Write a clip whose frame i is grey LEVEL*i with a red top-left quarter (the orientation marker)."""
    w, h = size
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if pts_ms is not None:
            stream.codec_context.time_base = MS
            stream.time_base = MS
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(n):
            img = np.full((h, w, 3), LEVEL * i, np.uint8)
            if marker:
                img[: h // 4, : w // 4] = (255, 0, 0)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], MS
            else:
                frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def counter(image: np.ndarray) -> int:
    """The frame number written by make_clip, read from the (marker-free) bottom half."""
    h = image.shape[0]
    return int(round(float(np.median(image[h // 2:])) / LEVEL))


def make_audio(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_frames(path: Path, images, *, fps: int = 10, codec: str = "libx264", pix_fmt: str = "yuv420p",
                 container_options: dict[str, str] | None = None) -> Path:
    """Encode RGB uint8 images (all the same size) as frames 0, 1, 2, ... at ``fps``."""
    images = list(images)
    h, w = images[0].shape[:2]
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
