"""Evidence for real footage, from result files: coverage, lost ranges, warnings, root speed, cuts.

    .venv/bin/python -m scripts.real_report .cache/real/*.npz [--json OUT]

Per result: frames, the share with a detection (``valid``), the lost ranges (``lost``), the largest
root speed within a shot (m/s; steps across a cut do not count), the cuts (output frames), where the
followed person's box centre was (first / middle / last frame, pixels) and the warnings' codes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.result import meta, read_result
from engine.segments import root_speed
from engine.tracking import describe_ranges, ranges


def summarise(path: Path) -> dict:
    r = read_result(path)
    m = meta(r)
    T = len(r["times"])
    shot = r["shot"] if "shot" in r else None
    v = root_speed(r["root_translation"], float(r["fps"]), shot)
    out = {"file": path.name, "frames": T, "found": round(float(np.mean(r["valid"])), 3),
           "max_root_speed": round(float(v.max()) if len(v) else 0.0, 2),
           "cuts": [int(c) for c in r["cuts"]] if "cuts" in r else None,
           "lost": describe_ranges(ranges(r["lost"])) if "lost" in r else None,
           "warnings": [w["code"] for w in m.get("warnings", [])]}
    if "person_box" in r:
        b = r["person_box"]
        idx = [i for i in (0, T // 2, T - 1) if np.isfinite(b[i]).all()]
        out["box_centre"] = {i: [int(b[i, 0]), int(b[i, 1])] for i in idx}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = [summarise(Path(p)) for p in args.results]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
