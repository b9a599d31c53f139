"""Pipeline wiring details that are not a stage's business: the output rate and the options record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from engine.pipeline import output_fps
from engine.result import read_result

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "engine" / "data" / "sample_walk.mp4"


def test_output_fps_never_exceeds_the_source():
    assert output_fps(60.0, 30.0, np.arange(5) / 30.0) == 30.0
    assert output_fps(10.0, 30.0, np.arange(5) / 10.0) == 10.0
    assert output_fps(None, 25.0, np.arange(5) / 25.0) == 25.0
    assert output_fps(None, None, np.arange(5) / 12.0) == 12.0


def test_result_fps_matches_its_timestamps_when_fps_exceeds_the_source(tmp_path):
    out = tmp_path / "r.npz"
    p = subprocess.run([sys.executable, "-m", "engine", "run", str(SAMPLE), "--out", str(out), "--fps", "60",
                        "--end-frame", "40", "--body", "solve", "--iterations", "5"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-2000:]
    r = read_result(out)
    step = float(np.median(np.diff(r["times"])))
    assert abs(float(r["fps"]) * step - 1.0) < 1e-3, (float(r["fps"]), step)
    opts = json.loads(str(r["meta_json"]))["options"]
    assert opts["job"]["fps"] == 60.0 and opts["body"] == {"name": "solve", "options": {"iterations": 5}}
