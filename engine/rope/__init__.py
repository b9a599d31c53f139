"""Rope: a learned, occlusion-robust body-pose network over BlazePose evidence (issue #9).

RopeTP's Rope (HAGT + ACPR, ``/work/shared/papers/ropetp.txt`` section 3.2) with BlazePose landmarks in
place of image features; see ``network.py`` for the inputs and outputs and ``models/rope/MODEL_CARD.md``
for the shipped weights.
"""

from .config import RopeConfig
from .infer import Rope, RopeOutput, load_net, save_weights
from .network import RopeNet, landmark_features, window_indices

__all__ = ["RopeConfig", "Rope", "RopeOutput", "RopeNet", "landmark_features", "load_net", "save_weights",
           "window_indices"]
