"""Rope's configuration: a frozen dataclass saved as JSON beside the safetensors weights.

Loading is strict: a key that the dataclass does not know, or one it needs that the file lacks, fails.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

FORMAT = "video_mocap.rope_config"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RopeConfig:
    # -- input ------------------------------------------------------------------------------------
    window: int = 5               # frames per estimate, centred on the frame estimated (odd; TAR: 5)
    # -- width --------------------------------------------------------------------------------------
    dim: int = 160                # token width
    heads: int = 4                # attention heads (HAGT is single-map per part; ACPR layers use these)
    ff_mult: int = 2              # feed-forward width = ff_mult * dim
    # -- ACPR depth ---------------------------------------------------------------------------------
    intra_layers: int = 2         # ISL: self-attention inside each level (Indep / Inter / FulCo)
    cross_layers: int = 2         # cross-level attention over all part tokens and WhoBo
    # -- ablation switches (the paper's Table 4) ----------------------------------------------------
    use_whobo: bool = True        # WhoBo concatenated to every part token
    use_cross_level: bool = True  # cross-level attention
    levels: tuple[str, ...] = ("indep", "inter", "fulco")  # part levels kept ("indep" is required)

    def __post_init__(self) -> None:
        assert self.window >= 1 and self.window % 2 == 1, f"window must be odd and >= 1, got {self.window}"
        assert self.dim % self.heads == 0, f"dim {self.dim} must be a multiple of heads {self.heads}"
        valid = ("indep", "inter", "fulco")
        assert "indep" in self.levels and all(lv in valid for lv in self.levels), \
            f"levels must include 'indep' and be among {valid}, got {self.levels}"
        object.__setattr__(self, "levels", tuple(self.levels))

    def to_json(self) -> str:
        d = asdict(self)
        d["levels"] = list(self.levels)
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "config": d}, indent=1)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def from_json(cls, text: str) -> "RopeConfig":
        doc = json.loads(text)
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a Rope config (format {doc.get('format')!r} v{doc.get('format_version')!r}; "
                             f"expected {FORMAT!r} v{FORMAT_VERSION})")
        d = doc["config"]
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(d) - names), sorted(names - set(d))
        if unknown or missing:
            raise ValueError(f"Rope config keys differ: unknown {unknown}, missing {missing}")
        d = dict(d)
        d["levels"] = tuple(d["levels"])
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "RopeConfig":
        return cls.from_json(Path(path).read_text())
