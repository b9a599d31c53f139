"""``keypoints`` stage ``blazepose``: BlazePose GHUM from the mediapipe 0.10.21 wheel (engine/pose.py)."""

from __future__ import annotations

from dataclasses import dataclass

from . import register


@dataclass(frozen=True)
class BlazePoseConfig:
    model_complexity: int = 1          # 1 = Full (inside the wheel); 2 = Heavy once installed: run
                                       # --keypoints-quality heavy, engine/setup_env.py --heavy-only
    static_image_mode: bool = False    # False: tracking mode (detector only when tracking is lost)
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    smooth_landmarks: bool = True


@register
class BlazePoseKeypoints:
    kind, name = "keypoints", "blazepose"
    Config = BlazePoseConfig

    def __init__(self, cfg: BlazePoseConfig):
        from ..pose import BlazePose

        self.cfg = cfg
        self._model = BlazePose(model_complexity=cfg.model_complexity, static_image_mode=cfg.static_image_mode,
                                min_detection_confidence=cfg.min_detection_confidence,
                                min_tracking_confidence=cfg.min_tracking_confidence,
                                smooth_landmarks=cfg.smooth_landmarks)

    @classmethod
    def from_config(cls, cfg: BlazePoseConfig, device: str = "cpu") -> "BlazePoseKeypoints":  # noqa: ARG003
        return cls(cfg)  # mediapipe's Python solution runs on the CPU whatever the device

    @classmethod
    def describe(cls) -> dict:
        from ..pose import model_file, quality_status

        path = model_file(BlazePoseConfig().model_complexity)
        return {"weights": str(path) if path else None, "weights_found": bool(path and path.is_file()),
                "source": "mediapipe 0.10.21 wheel",
                "qualities": quality_status()}

    def __call__(self, rgb):
        return self._model(rgb)

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> "BlazePoseKeypoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
