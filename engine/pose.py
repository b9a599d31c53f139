"""Per-frame 2D/3D body landmarks from the BlazePose GHUM model shipped in the mediapipe 0.10.21 wheel.

``model_complexity=1`` (Full) ships in the wheel; 0 and 2 try to download their model unless it is in
place (platform.md), so the engine checks for the file first.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np

from .errors import EngineError

from .landmarks import LANDMARK_NAMES, LM, N_LANDMARKS  # noqa: F401  (re-exported: the track's vocabulary)


@dataclass
class LandmarkTrack:
    """Landmarks of a whole clip, one row per processed frame (NaN where no person was found)."""

    image: np.ndarray        # (T, 33, 3) x, y normalised to the image, z relative depth
    world: np.ndarray        # (T, 33, 3) metres, hip-centred, camera axes (x right, y down, z away)
    visibility: np.ndarray   # (T, 33) 0..1, 0 where not detected
    valid: np.ndarray        # (T,) bool
    times: np.ndarray        # (T,) seconds
    frame_index: np.ndarray  # (T,) source frame index

    def __len__(self) -> int:
        return len(self.times)


class LandmarkBuffer:
    """Grows per frame without holding images; O(T) small arrays (about 1 KB a frame)."""

    def __init__(self) -> None:
        self._image: list[np.ndarray] = []
        self._world: list[np.ndarray] = []
        self._vis: list[np.ndarray] = []
        self._valid: list[bool] = []
        self._times: list[float] = []
        self._index: list[int] = []

    def append(self, t: float, index: int, det: "Detection | None") -> None:
        if det is None:
            self._image.append(np.full((N_LANDMARKS, 3), np.nan, np.float32))
            self._world.append(np.full((N_LANDMARKS, 3), np.nan, np.float32))
            self._vis.append(np.zeros(N_LANDMARKS, np.float32))
            self._valid.append(False)
        else:
            self._image.append(det.image)
            self._world.append(det.world)
            self._vis.append(det.visibility)
            self._valid.append(True)
        self._times.append(float(t))
        self._index.append(int(index))

    def __len__(self) -> int:
        return len(self._times)

    def track(self) -> LandmarkTrack:
        def stack(xs, shape, dtype):
            return np.stack(xs).astype(dtype) if xs else np.zeros((0, *shape), dtype)

        return LandmarkTrack(
            image=stack(self._image, (N_LANDMARKS, 3), np.float32),
            world=stack(self._world, (N_LANDMARKS, 3), np.float32),
            visibility=stack(self._vis, (N_LANDMARKS,), np.float32),
            valid=np.asarray(self._valid, bool),
            times=np.asarray(self._times, np.float64),
            frame_index=np.asarray(self._index, np.int64),
        )


@dataclass
class Detection:
    image: np.ndarray       # (33, 3)
    world: np.ndarray       # (33, 3)
    visibility: np.ndarray  # (33,)


@contextlib.contextmanager
def _stdout_to_stderr():
    """Route fd 1 to stderr while a chatty native library runs (protocol stdout stays clean)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


_MODEL_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}
# The user-facing keypoint quality (``run --keypoints-quality``, the add-on's choice) -> model_complexity.
QUALITIES: dict[str, int] = {"full": 1, "heavy": 2}


def heavy_setup_command() -> str:
    """The command that installs BlazePose Heavy into this engine's environment (engine/setup_env.py)."""
    from pathlib import Path

    script = Path(__file__).resolve().parent / "setup_env.py"
    return f"{sys.executable} {script} --venv {sys.prefix} --heavy-only"


def model_file(model_complexity: int = 1):
    """Path of the landmark model file mediapipe loads for a complexity (None if mediapipe is missing)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "modules" / "pose_landmark" / _MODEL_FILES[model_complexity]


def quality_status() -> dict[str, dict]:
    """Per keypoint quality: its model_complexity, model file and whether it is installed (``check``
    and the keypoints stages' ``describe`` report it; for Heavy also the command that installs it)."""
    out: dict[str, dict] = {}
    for quality, complexity in QUALITIES.items():
        path = model_file(complexity)
        info: dict = {"model_complexity": complexity, "path": str(path) if path else None,
                      "installed": bool(path and path.is_file())}
        if quality == "heavy" and not info["installed"]:
            info["install"] = heavy_setup_command()
        out[quality] = info
    return out


def require_model(model_complexity: int) -> None:
    """Raise a ``usage`` error for an unknown complexity, an ``environment`` error (naming the set-up
    command for Heavy) when its model file is not installed; cheap (no mediapipe import)."""
    if isinstance(model_complexity, bool) or model_complexity not in _MODEL_FILES:
        raise EngineError("usage", f"model_complexity must be 0, 1 or 2, got {model_complexity!r}")
    path = model_file(model_complexity)
    if path is None or path.is_file():
        return   # no mediapipe at all: the import below reports it
    if model_complexity == QUALITIES["heavy"]:
        raise EngineError("environment", f"BlazePose Heavy (keypoint quality 'heavy') is not installed ({path}). "
                                         f"Install it once with: {heavy_setup_command()}")
    raise EngineError("environment", f"The BlazePose model for complexity {model_complexity} is not installed "
                                     f"({path}); copy {path.name} from the npm package @mediapipe/pose there.")


class BlazePose:
    """BlazePose GHUM in tracking mode: the one place the pose model is built (engine, benchmarks and
    data tools all use this class). Call with RGB uint8 frames in order.

    ``model_complexity`` 1 (Full) ships in the wheel; 0 and 2 need their model file in place (mediapipe
    would otherwise try to download it): a clear ``environment`` error says so instead (for 2, Heavy,
    it names the set-up command: ``engine/setup_env.py --heavy-only``).
    """

    def __init__(self, *, model_complexity: int = 1, static_image_mode: bool = False,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 smooth_landmarks: bool = True):
        require_model(model_complexity)
        try:
            with _stdout_to_stderr():
                import mediapipe as mp

                self._pose = mp.solutions.pose.Pose(
                    static_image_mode=static_image_mode, model_complexity=model_complexity,
                    smooth_landmarks=smooth_landmarks, enable_segmentation=False,
                    min_detection_confidence=min_detection_confidence,
                    min_tracking_confidence=min_tracking_confidence)
        except Exception as e:  # broken/missing mediapipe install
            raise EngineError("environment", f"The pose model (mediapipe BlazePose) could not be loaded: {e}") from e

    def __call__(self, rgb: np.ndarray) -> Detection | None:
        res = self._pose.process(np.ascontiguousarray(rgb))
        if res.pose_landmarks is None or res.pose_world_landmarks is None:
            return None
        lm = res.pose_landmarks.landmark
        wl = res.pose_world_landmarks.landmark
        image = np.array([(p.x, p.y, p.z) for p in lm], np.float32)
        vis = np.array([p.visibility for p in lm], np.float32)
        world = np.array([(p.x, p.y, p.z) for p in wl], np.float32)
        return Detection(image=image, world=world, visibility=np.clip(vis, 0.0, 1.0))

    def reset(self) -> None:
        """Forget the tracked region (the next frame runs the person detector again)."""
        self._pose.reset()

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> "BlazePose":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
