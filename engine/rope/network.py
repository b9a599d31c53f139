"""The Rope network over BlazePose evidence: HAGT tokens -> ACPR -> rot6d, root, shape.

Input features (``landmark_features``) are built the same way in training and inference from a window
of ``cfg.window`` frames centred on the frame estimated (edges repeat the first/last frame; frames with
no detection are zeros with a "present" flag of 0). Per landmark and frame, 8 numbers:
x, y in the person's box (centre and size from the window's visible landmarks, in pixels, so the
aspect is kept), a zero (BlazePose's image z, unused: see ``landmark_features``), the metric world position (BlazePose world axes,
hip-centred), the visibility and the present flag. Four numbers per window describe the box in the
image (centre offset from the image centre and size, over the image height; the aspect W/H).

Outputs, for the centre frame:
- ``rot6d`` (B, 24, 6): vm24 local rotations (6D = first two matrix columns,
  ``engine.geometry.rotations.rot6d_cols_to_matrix``); joint 0 is the root orientation in solve.py's
  body-camera frame (x right, y away from the camera, z up);
- ``root`` (B, 3): the pelvis in that frame relative to the landmarks' hip centre (metres);
- ``rest`` (B, 24, 3): rest offsets (metres; the root's is the pelvis height), one per frame;
  inference averages them over the clip;
- ``attn`` (B, 24, 33): the Indep parts' attention over the landmarks (HAGT), for confidences.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import skeleton as sk
from ..pose import N_LANDMARKS
from . import hierarchy as hi
from .config import RopeConfig

FEATURES_PER_LANDMARK = 8          # box x, y, (unused z: 0), world x, y, z, visibility, present
GLOBAL_FEATURES = 4                # box centre x, y (from the image centre, / H), box size / H, W / H
ROT6D_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
VIS_THRESHOLD = 0.3                # landmarks used for the box


def landmark_features(image: torch.Tensor, world: torch.Tensor, visibility: torch.Tensor, valid: torch.Tensor,
                      image_size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows of landmarks -> network input.

    image (B, W, 33, 3) normalised x, y + relative z; world (B, W, 33, 3) metres; visibility (B, W, 33);
    valid (B, W) bool; image_size (B, 2) pixels (width, height).
    Returns lm (B, 33, W*8), glob (B, 4), vis_c (B, 33) (the centre frame's visibility, 0 if missing).
    """
    B, W = valid.shape
    dt = image.dtype
    size = image_size.to(dt)                                                   # (B, 2)
    ok = valid[..., None] & torch.isfinite(image).all(-1) & torch.isfinite(world).all(-1)  # (B, W, 33)
    px = torch.nan_to_num(image[..., :2]) * size[:, None, None]                # (B, W, 33, 2) pixels
    use = ok & (visibility > VIS_THRESHOLD)                                    # (B, W, 33)
    use = torch.where(use.flatten(1).any(1)[:, None, None], use, ok)           # fall back to any landmark
    big = torch.tensor(1e9, dtype=dt)
    lo = torch.where(use[..., None], px, big).flatten(1, 2).min(1).values      # (B, 2)
    hi_ = torch.where(use[..., None], px, -big).flatten(1, 2).max(1).values    # (B, 2)
    none = ~use.flatten(1).any(1)                                              # (B,) nothing seen
    centre = torch.where(none[:, None], size / 2, (lo + hi_) / 2)              # (B, 2)
    scale = torch.where(none, size[:, 1], (hi_ - lo).max(-1).values).clamp_min(8.0)  # (B,)
    s = scale[:, None, None, None]
    xy = (px - centre[:, None, None]) / s                                      # (B, W, 33, 2)
    # BlazePose's image z is not used (the slot stays, zero): on the dev set its spread is 4x that of a
    # projection-consistent relative depth, and not centred on the hips; the world landmarks carry depth.
    z = torch.zeros_like(image[..., 2:3])                                      # (B, W, 33, 1)
    wl = torch.nan_to_num(world)                                               # (B, W, 33, 3)
    vis = torch.where(ok, visibility, torch.zeros_like(visibility))[..., None]  # (B, W, 33, 1)
    f = torch.cat([xy, z, wl, vis, ok[..., None].to(dt)], -1) * ok[..., None].to(dt)  # (B, W, 33, 8)
    lm = f.permute(0, 2, 1, 3).reshape(B, N_LANDMARKS, W * FEATURES_PER_LANDMARK)   # (B, 33, W*8)
    H = size[:, 1]
    glob = torch.stack([(centre[:, 0] - size[:, 0] / 2) / H, (centre[:, 1] - size[:, 1] / 2) / H,
                        scale / H, size[:, 0] / H], -1)                        # (B, 4)
    vis_c = vis[:, W // 2, :, 0]                                               # (B, 33)
    return lm, glob, vis_c


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class RopeNet(nn.Module):
    def __init__(self, cfg: RopeConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.dim
        # -- landmark evidence -> landmark tokens ------------------------------------------------
        self.lm_embed = _mlp(cfg.window * FEATURES_PER_LANDMARK, 2 * D, D)
        self.lm_pos = nn.Parameter(torch.randn(N_LANDMARKS, D) * 0.02)
        self.glob_embed = nn.Linear(GLOBAL_FEATURES, D)
        # -- HAGT: one learned, visibility-aware attention map per part ------------------------------
        parts = [p for lv in cfg.levels for p in hi.LEVELS[lv]] + list(hi.WHOBO)
        level_id = [i for i, lv in enumerate(cfg.levels) for _ in hi.LEVELS[lv]]
        self.n_parts = len(parts) - 1                                          # without WhoBo
        self.part_query = nn.Parameter(torch.randn(len(parts), D) * 0.02)
        self.attn_prior = nn.Parameter(torch.as_tensor(2.0 * hi.membership(tuple(parts))))  # (P+1, 33)
        self.vis_gain = nn.Parameter(torch.ones(len(parts)))
        self.q = nn.Linear(D, D)
        self.k = nn.Linear(D, D)
        self.v = nn.Linear(D, D)
        self.token_ff = _mlp(D, cfg.ff_mult * D, D)
        # -- ACPR ------------------------------------------------------------------------------------
        self.whobo_fuse = nn.Linear(2 * D if cfg.use_whobo else D, D)
        lid = torch.as_tensor(level_id)
        self.register_buffer("intra_mask", lid[:, None] != lid[None, :], persistent=False)  # (P, P) True = blocked

        def layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(D, cfg.heads, cfg.ff_mult * D, dropout=0.0, activation="gelu",
                                              batch_first=True, norm_first=True)

        self.intra = nn.ModuleList(layer() for _ in range(cfg.intra_layers))
        self.cross = nn.ModuleList(layer() for _ in range(cfg.cross_layers if cfg.use_cross_level else 0))
        self.out_norm = nn.LayerNorm(D)
        # -- heads -----------------------------------------------------------------------------------
        self.rot_head = _mlp(D, D, 6)                                          # joints 1..23 from Indep tokens
        self.root_head = _mlp(2 * D, D, 6 + 3)                                 # root orientation + position
        self.shape_head = _mlp(2 * D, D, sk.J * 3)                             # rest-offset residuals
        self.register_buffer("rot6d_identity", torch.tensor(ROT6D_IDENTITY), persistent=False)
        self.register_buffer("rest_default", torch.as_tensor(sk.DEFAULT_REST_OFFSETS, dtype=torch.float32),
                             persistent=False)

    def forward(self, lm: torch.Tensor, glob: torch.Tensor, vis_c: torch.Tensor) -> dict[str, torch.Tensor]:
        B = lm.shape[0]
        D = self.cfg.dim
        x = self.lm_embed(lm) + self.lm_pos + self.glob_embed(glob)[:, None]   # (B, 33, D)
        # HAGT: logits = content + learned part prior + gain * log(visibility)
        q = self.q(self.part_query)                                            # (P+1, D)
        k = self.k(x)                                                          # (B, 33, D)
        logits = torch.einsum("pd,bld->bpl", q, k) / D ** 0.5 + self.attn_prior \
            + self.vis_gain[:, None] * torch.log(vis_c[:, None, :] + 0.05)     # (B, P+1, 33)
        attn = logits.softmax(-1)                                              # (B, P+1, 33)
        tok = torch.einsum("bpl,bld->bpd", attn, self.v(x)) + self.part_query  # (B, P+1, D)
        tok = tok + self.token_ff(tok)
        parts, whobo = tok[:, :-1], tok[:, -1]                                 # (B, P, D), (B, D)
        # ACPR: WhoBo reference on every part token, intra-level then cross-level attention
        if self.cfg.use_whobo:
            parts = self.whobo_fuse(torch.cat([parts, whobo[:, None].expand(-1, parts.shape[1], -1)], -1))
        else:
            parts = self.whobo_fuse(parts)
        for blk in self.intra:
            parts = blk(parts, src_mask=self.intra_mask)                       # (B, P, D)
        for blk in self.cross:
            parts = blk(parts)
        parts = self.out_norm(parts)
        indep = parts[:, :sk.J]                                                # (B, 24, D)
        rot = self.rot_head(indep[:, 1:]) + self.rot6d_identity                # (B, 23, 6)
        pooled = torch.cat([whobo, parts.mean(1)], -1)                         # (B, 2D)
        rr = self.root_head(torch.cat([whobo, indep[:, 0]], -1))               # (B, 9)
        rot6d = torch.cat([rr[:, None, :6] + self.rot6d_identity, rot], 1)     # (B, 24, 6)
        rest = self.rest_default + 0.05 * self.shape_head(pooled).view(B, sk.J, 3)  # (B, 24, 3)
        return {"rot6d": rot6d, "root": 0.1 * rr[:, 6:], "rest": rest, "attn": attn[:, :sk.J]}


def window_indices(T: int, window: int) -> np.ndarray:
    """(T, window) frame indices of the centred windows, edges repeated."""
    h = window // 2
    return np.clip(np.arange(T)[:, None] + np.arange(-h, h + 1)[None], 0, max(T - 1, 0))
