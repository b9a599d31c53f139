"""The TP denoiser: a transformer over a window of frames that predicts the clean target ``x0``.

Tokens: one per frame, ``Linear([x_t, c])`` plus a fixed sinusoidal frame position and an embedding of
the diffusion step. Inputs and outputs are normalised with the training set's statistics, which are
buffers of the module (saved with the weights). Config and weights load strictly.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .representation import X_DIM

FORMAT = "video_mocap.tp_config"
FORMAT_VERSION = 1
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "models" / "tp"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "tp.safetensors"


@dataclass(frozen=True)
class TPConfig:
    window: int = 120            # frames per window (4 s at 30 fps)
    cond_dim: int = 72           # 24 joints x 3
    x_dim: int = X_DIM
    dim: int = 128
    heads: int = 4
    layers: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    diffusion_steps: int = 1000

    def __post_init__(self) -> None:
        assert self.dim % self.heads == 0, f"dim {self.dim} must be a multiple of heads {self.heads}"
        assert self.x_dim == X_DIM, f"x_dim must be {X_DIM} (engine.tp.representation)"

    def save(self, path: str | Path) -> None:
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": asdict(self)}
        Path(path).write_text(json.dumps(doc, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TPConfig":
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a TP config (format {doc.get('format')!r} v{doc.get('format_version')!r}; "
                             f"expected {FORMAT!r} v{FORMAT_VERSION})")
        from ..stages import config_from_dict   # strict: unknown, missing or mistyped keys fail

        return config_from_dict(cls, doc["config"], complete=True)


def sinusoid(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """(...,) positions -> (..., dim) sin/cos features (the transformer's fixed encoding)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=pos.device) / half)
    a = pos.float()[..., None] * freq
    return torch.cat([torch.sin(a), torch.cos(a)], -1)


class TPDenoiser(nn.Module):
    def __init__(self, cfg: TPConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.inp = nn.Linear(cfg.x_dim + cfg.cond_dim, d)
        self.step = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff_mult * d, cfg.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.x_dim)
        for name, n in (("x_mean", cfg.x_dim), ("x_std", cfg.x_dim), ("c_mean", cfg.cond_dim), ("c_std", cfg.cond_dim)):
            self.register_buffer(name, torch.zeros(n) if "mean" in name else torch.ones(n))

    def set_stats(self, x_mean, x_std, c_mean, c_std) -> None:
        for name, v in (("x_mean", x_mean), ("x_std", x_std), ("c_mean", c_mean), ("c_std", c_std)):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(v), dtype=torch.float32))

    def norm_x(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def denorm_x(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.x_std + self.x_mean

    def norm_c(self, c: torch.Tensor) -> torch.Tensor:
        return (c - self.c_mean) / self.c_std

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x_t (B, W, x_dim) and c (B, W, cond_dim), both normalised; t (B,) -> x0 (B, W, x_dim), normalised."""
        B, W, _ = x_t.shape
        h = self.inp(torch.cat([x_t, c], -1))
        h = h + sinusoid(torch.arange(W, device=x_t.device), self.cfg.dim)[None]
        h = h + self.step(sinusoid(t, self.cfg.dim))[:, None]
        return self.out(self.norm(self.encoder(h)))


def save(net: TPDenoiser, directory: str | Path) -> None:
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    net.cfg.save(d / CONFIG_NAME)
    save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(d / WEIGHTS_NAME))


def load(directory: str | Path = DEFAULT_DIR, device: str = "cpu") -> TPDenoiser:
    """Build the network from ``config.json`` and load ``tp.safetensors`` strictly (a missing or
    unexpected key, or a shape mismatch, raises)."""
    from safetensors.torch import load_file

    d = Path(directory)
    if not (d / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"TP weights not found: {d / WEIGHTS_NAME} (train them with "
                                f"python -m scripts.train_tp, or restore models/tp/ from the repository)")
    net = TPDenoiser(TPConfig.load(d / CONFIG_NAME))
    net.load_state_dict(load_file(str(d / WEIGHTS_NAME)), strict=True)
    return net.to(device).eval()
