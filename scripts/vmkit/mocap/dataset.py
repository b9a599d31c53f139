"""The mocap collection in ``data/mocap`` (see its README): listing, subject ids, the train/val split.

Subjects (performers) are the unit of the split, never clips or frames:
- ``cmu_XX``: CMU subject XX (cmu-mb, cmu-daz; cmu-dance salsa 60/61, indian 94, martial 135 from
  ``cmu-dance/_clip_index.csv``), ``hdm05_XX``: HDM05 actor (bd, bk, dg, mm, tr),
  ``secondlife``: the hand-keyed Second Life avatar clips.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from .asf_amc import load_asf_amc
from .bvh import load_bvh
from .retarget import Motion, detect_source_map, retarget

DEFAULT_ROOT = Path(os.environ.get("VIDMOCAP_MOCAP_DIR", Path(__file__).resolve().parents[4] / "shared" / "data" / "mocap"))

# Validation performers: two CMU-MB subjects (07 walking, 09 running), one Daz-format CMU subject (16),
# the HDM05 test actors (mm, tr; HDM05's own split) and the CMU Indian dance performer (94).
VAL_SUBJECTS = frozenset({"cmu_07", "cmu_09", "cmu_16", "cmu_94", "hdm05_mm", "hdm05_tr"})


@dataclass(frozen=True)
class ClipEntry:
    path: str
    source: str          # "cmu-mb", "cmu-daz", "cmu-dance", "hdm05", "secondlife"
    subject: str
    name: str            # e.g. "cmu-mb/07/07_01"
    asf_path: str = ""   # HDM05 only

    @property
    def split(self) -> str:
        return "val" if self.subject in VAL_SUBJECTS else "train"


def list_clips(root: str | Path = DEFAULT_ROOT) -> list[ClipEntry]:
    root = Path(root)
    out: list[ClipEntry] = []
    for src in ("cmu-mb", "cmu-daz"):
        for f in sorted((root / src).glob("*/*.bvh")):
            out.append(ClipEntry(str(f), src, f"cmu_{f.parent.name}", f"{src}/{f.parent.name}/{f.stem}"))
    index = root / "cmu-dance" / "_clip_index.csv"
    if index.exists():
        with open(index, newline="") as fh:
            for row in csv.DictReader(fh):
                subj = row["cmu_trial"].split("_")[0].rstrip("?")
                f = root / "cmu-dance" / row["file"]
                out.append(ClipEntry(str(f), "cmu-dance", f"cmu_{subj}", f"cmu-dance/{row['file'][:-4]}"))
    for f in sorted((root / "hdm05").glob("*/*/*.amc")):
        actor = f.name.split("_")[1]
        out.append(ClipEntry(str(f), "hdm05", f"hdm05_{actor}", f"hdm05/{f.parent.parent.name}/{f.parent.name}/{f.stem}",
                             asf_path=str(f.parent / f"HDM_{actor}.asf")))
    for f in sorted((root / "secondlife").glob("*.bvh")):
        out.append(ClipEntry(str(f), "secondlife", "secondlife", f"secondlife/{f.stem}"))
    return out


def load_motion(entry: ClipEntry, fps: float | None = 30.0) -> Motion:
    clip = load_asf_amc(entry.asf_path, entry.path) if entry.asf_path else load_bvh(entry.path)
    return retarget(clip, detect_source_map(clip), fps=fps, subject=entry.subject, source=entry.source,
                    name=entry.name)
