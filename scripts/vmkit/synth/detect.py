"""BlazePose sanity check on a rendered clip, with the engine's own pose model (engine.pose.BlazePose)."""

from __future__ import annotations

from pathlib import Path

from engine.pose import BlazePose, Detection
from engine.video import iter_frames


def detect_clip(path: Path, static_image_mode: bool = False) -> list[Detection | None]:
    """Per frame: the engine's BlazePose detection (or None)."""
    with BlazePose(static_image_mode=static_image_mode) as pose:
        return [pose(fr.image) for fr in iter_frames(str(path), max_side=None)]


def detection_rate(path: Path, static_image_mode: bool = False) -> float:
    found = detect_clip(path, static_image_mode)
    return sum(d is not None for d in found) / max(len(found), 1)
