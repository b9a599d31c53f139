"""Train TP, the trajectory prior (engine/tp, docs/tp.md), on the mocap of data/mocap.

    nohup nice -n 5 .venv/bin/python -m scripts.train_tp --run .cache/tp_run [--minutes 60] &

Resumable: the run folder keeps ``checkpoint.pt`` (model, optimiser, step; loaded with
``weights_only=True``), ``best/`` (config.json + tp.safetensors, picked on the VALIDATION performers,
never on the dev set) and ``train.log``. Run the same command again to go on.

Data: ``make_training_data`` outputs (``--data``, its ``motion_{train,val}.npz``: vm24 world joints,
root, contacts, split by performer). Each sample is a window cut from one clip and augmented:
playback speed 0.8-1.25x (resampled, contacts relabelled with engine.contacts), mirror, a random world
yaw, and noise on the joints the condition is made from (white and slowly drifting, per-sample levels
up to a few cm: the engine's body stage is not exact). Heading, condition and target come from
engine.tp.representation, the functions the engine uses.

``--engine-pairs`` (``scripts.make_tp_engine_data``) adds, every step, ``--pair-batch`` windows whose
condition the ENGINE built from its own body estimate on rendered clips (BlazePose + body stage), with
the true targets: train and test inputs match. ``--pair-val-subjects`` holds some performers' pairs out
and picks the checkpoint on them (path error + contact error). ``--init`` fine-tunes shipped weights.

Loss: mean squared error of the predicted ``x0`` (normalised) at a uniformly drawn diffusion step.
Validation: DDIM (10 steps) on fixed windows of the validation performers; the score is the mean
planar root error (mm) of the window's path integrated from its true start.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from engine import contacts as ct
from engine import skeleton as sk
from engine.tp import diffusion as df
from engine.tp import representation as rp
from engine.tp.model import TPConfig, TPDenoiser, load, save

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("train_tp")
CONTACT_MIRROR = [2, 3, 0, 1]   # CONTACT_JOINTS: left_ankle, left_foot, right_ankle, right_foot


def default_data_dir() -> Path:
    for d in (ROOT / ".cache" / "training", Path("/work/main/.cache/training")):
        if (d / "motion_train.npz").exists():
            return d
    return ROOT / ".cache" / "training"


class Clips:
    def __init__(self, path: Path, min_len: int = 24):
        with np.load(path, allow_pickle=False) as d:
            J, R = d["joints_world"], d["root_translation"]
            starts, lengths, rest = d["clip_start"], d["clip_length"], d["rest_offsets"]
        self.clips = [(J[s:s + n].astype(np.float64), R[s:s + n].astype(np.float64), rest[k])
                      for k, (s, n) in enumerate(zip(starts, lengths)) if n >= min_len]
        self.lengths = np.array([len(c[0]) for c in self.clips])

    def sample(self, rng: np.random.Generator, L: int, noise: bool = True, augment: bool = True):
        """One augmented window of L frames: (cond (L, 72), x (L, 7))."""
        speed = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))) if augment else 1.0
        need = (L - 1) * speed + 1
        ok = np.flatnonzero(self.lengths >= need)
        if len(ok) == 0:
            speed, ok = 1.0, np.flatnonzero(self.lengths >= L)
        k = rng.choice(ok, p=self.lengths[ok] / self.lengths[ok].sum())
        J, Rt, rest = self.clips[k]
        t0 = rng.uniform(0, len(J) - 1 - (L - 1) * speed)
        tt = t0 + np.arange(L) * speed
        i0 = np.floor(tt).astype(int)
        i1 = np.minimum(i0 + 1, len(J) - 1)
        a = (tt - i0)[:, None]
        joints = J[i0] * (1 - a[..., None]) + J[i1] * a[..., None]
        root = Rt[i0] * (1 - a) + Rt[i1] * a
        if augment:
            if rng.random() < 0.5:                       # mirror: x -> -x, left <-> right
                joints = joints[:, sk.MIRROR] * np.array([-1.0, 1.0, 1.0])
                root = root * np.array([-1.0, 1.0, 1.0])
            yaw0 = rng.uniform(-np.pi, np.pi)            # a random world heading
            Rz = rp.yaw_matrices(np.array([yaw0]))[0]
            joints, root = joints @ Rz.T, root @ Rz.T
        contacts = ct.from_joints(joints, rp.FPS, rest)
        obs = joints
        if noise:
            white = rng.uniform(0.0, 0.03)
            drift = rng.uniform(0.0, 0.04)
            walk = np.cumsum(rng.standard_normal((L // 10 + 2,) + joints.shape[1:]), 0) * drift / 2
            u = np.arange(L) / 10.0
            k0 = np.floor(u).astype(int)
            f = (u - k0)[:, None, None]
            slow = walk[k0] * (1 - f) + walk[k0 + 1] * f          # linear between knots 10 frames apart
            obs = joints + rng.standard_normal(joints.shape) * white + slow - slow.mean(0)
        yaw = rp.heading(obs)
        return rp.condition(obs, yaw), rp.target(root, yaw, contacts, rp.FPS)

    def batch(self, rng, B: int, L: int, **kw):
        cs, xs = zip(*(self.sample(rng, L, **kw) for _ in range(B)))
        return torch.as_tensor(np.stack(cs)), torch.as_tensor(np.stack(xs))


class EnginePairs:
    """``scripts.make_tp_engine_data`` output: conditions the ENGINE built from its body estimate on
    rendered clips, with the true targets. ``subjects`` keeps only those performers (None: all),
    ``exclude`` drops some (held out for picking the checkpoint)."""

    def __init__(self, path: Path, *, subjects=None, exclude=()):
        with np.load(path, allow_pickle=False) as d:
            cond, x, starts, lengths = d["cond"], d["x"], d["clip_start"], d["clip_length"]
            subj = d["clip_subject"].astype(str)
        keep = [k for k in range(len(subj)) if (subjects is None or subj[k] in subjects) and subj[k] not in exclude]
        self.clips = [(cond[starts[k]:starts[k] + lengths[k]], x[starts[k]:starts[k] + lengths[k]]) for k in keep]
        self.subjects = sorted({subj[k] for k in keep})
        self.frames = int(sum(len(c) for c, _ in self.clips))

    def batch(self, rng, B: int, L: int):
        cs, xs = [], []
        for _ in range(B):
            c, x = self.clips[int(rng.integers(len(self.clips)))]
            a = int(rng.integers(0, len(c) - L + 1))
            cs.append(c[a:a + L])
            xs.append(x[a:a + L])
        return torch.as_tensor(np.stack(cs)), torch.as_tensor(np.stack(xs))


def stats(clips: Clips, rng) -> tuple[np.ndarray, ...]:
    c, x = clips.batch(rng, 256, 60)
    c, x = c.reshape(-1, c.shape[-1]).numpy(), x.reshape(-1, x.shape[-1]).numpy()
    xs = x.std(0) + 1e-3
    xm = x.mean(0)
    xm[rp.CONTACT], xs[rp.CONTACT] = 0.0, 1.0          # contacts are already -1 / +1
    return xm, xs, c.mean(0), c.std(0) + 1e-3


@torch.no_grad()
def validate(net: TPDenoiser, val: list[tuple[np.ndarray, np.ndarray]], abar: np.ndarray, steps: int = 10) -> dict:
    net.eval()
    errs, zero_errs, vel_errs, contact_acc = [], [], [], []
    for c, x in val:
        cn = net.norm_c(torch.as_tensor(c))
        W = min(net.cfg.window, len(c))

        def predict(xw, t, starts):
            cw = torch.stack([cn[s:s + W] for s in starts])
            return net(torch.as_tensor(xw, dtype=torch.float32), torch.full((len(starts),), t), cw).numpy()

        xn = df.ddim_sample(predict, len(c), x.shape[1], abar, steps=steps, window=net.cfg.window, overlap=30)
        xp = net.denorm_x(torch.as_tensor(xn, dtype=torch.float32)).numpy()
        # both paths integrated from the heading-frame velocities (the same frames, so comparable)
        true = np.cumsum(x[:, :2], 0) / rp.FPS
        pred = np.cumsum(xp[:, :2], 0) / rp.FPS
        errs.append(np.linalg.norm(pred - true, axis=1).mean() * 1000)
        zero_errs.append(np.linalg.norm(true, axis=1).mean() * 1000)
        vel_errs.append(np.linalg.norm(xp[:, :2] - x[:, :2], axis=1).mean())
        contact_acc.append(((xp[:, rp.CONTACT] > 0) == (x[:, rp.CONTACT] > 0)).mean())
    net.train()
    return {"path_mm": float(np.mean(errs)), "still_path_mm": float(np.mean(zero_errs)),
            "vel_ms": float(np.mean(vel_errs)), "contact_acc": float(np.mean(contact_acc))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / ".cache" / "tp_run")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--decay", action="store_true",
                    help="cosine learning-rate decay to a tenth over this run's --minutes (a final run)")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None,
                    help="start a NEW run from these weights (config.json + tp.safetensors, normalisation included)")
    ap.add_argument("--engine-pairs", type=Path, default=None,
                    help="make_tp_engine_data npz: also train on the engine's own conditions with true targets")
    ap.add_argument("--pair-batch", type=int, default=16)
    ap.add_argument("--pair-val-subjects", default="",
                    help="comma-separated performers of --engine-pairs kept out of training; the checkpoint is "
                         "then picked on their path error + contact error")
    args = ap.parse_args(argv)
    args.run.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        handlers=[logging.FileHandler(args.run / "train.log"), logging.StreamHandler(sys.stderr)])
    torch.set_num_threads(args.threads)
    data = args.data or default_data_dir()
    train, val_clips = Clips(data / "motion_train.npz"), Clips(data / "motion_val.npz")
    log.info("data %s: %d train clips (%d frames), %d val clips", data, len(train.clips), train.lengths.sum(),
             len(val_clips.clips))
    vrng = np.random.default_rng(1234)
    val = [val_clips.sample(vrng, 240, noise=True, augment=False) for _ in range(24)]

    ckpt_path = args.run / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=True) if ckpt_path.exists() else None
    pairs = pair_val = None
    if args.engine_pairs:
        held = tuple(v for v in args.pair_val_subjects.split(",") if v)
        pairs = EnginePairs(args.engine_pairs, exclude=held)
        pair_val = EnginePairs(args.engine_pairs, subjects=held) if held else None
        log.info("engine pairs %s: train %d clips (%d frames) of %s; held out %s (%d clips)", args.engine_pairs,
                 len(pairs.clips), pairs.frames, pairs.subjects, held, len(pair_val.clips) if pair_val else 0)
    if ckpt:
        cfg = TPConfig(**json.loads(ckpt["config"]))
    elif args.init:
        cfg = load(args.init).cfg
    else:
        cfg = TPConfig(layers=args.layers, dim=args.dim, dropout=args.dropout)
    torch.manual_seed(args.seed)
    net = TPDenoiser(cfg)
    rng = np.random.default_rng(args.seed)
    if ckpt is None and args.init:
        net.load_state_dict(load(args.init).state_dict(), strict=True)
        log.info("initialised from %s", args.init)
    elif ckpt is None:
        net.set_stats(*stats(train, rng))
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    step, best = 0, float("inf")
    if ckpt:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        step, best = int(ckpt["step"]), float(ckpt["best"])
        rng = np.random.default_rng(args.seed + step)
        log.info("resumed at step %d (best val path error %.1f mm)", step, best)
    log.info("TP: %d parameters, config %s", sum(p.numel() for p in net.parameters()), cfg)
    abar_np = df.cosine_alphas_cumprod(cfg.diffusion_steps)
    abar = torch.as_tensor(abar_np, dtype=torch.float32)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 500))

    def save_checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": int(step), "best": float(best),
                    "config": json.dumps(cfg.__dict__)}, tmp)
        tmp.replace(ckpt_path)

    t_end = time.time() + args.minutes * 60
    last_ckpt, t0, losses = time.time(), time.time(), []
    net.train()
    while step < args.steps and time.time() < t_end:
        L = cfg.window if rng.random() < 0.75 else int(rng.integers(24, cfg.window))
        c, x = train.batch(rng, args.batch, L)
        xn, cn = net.norm_x(x), net.norm_c(c)
        t = torch.as_tensor(rng.integers(0, cfg.diffusion_steps, args.batch))
        a = abar[t][:, None, None]
        noise = torch.randn_like(xn)
        x_t = a.sqrt() * xn + (1 - a).sqrt() * noise
        loss = torch.nn.functional.mse_loss(net(x_t, t, cn), xn)
        if pairs is not None:
            Lp = min(int(rng.integers(24, cfg.window + 1)), min(len(cp) for cp, _ in pairs.clips))
            cp, xp = pairs.batch(rng, args.pair_batch, Lp)
            xpn, cpn = net.norm_x(xp), net.norm_c(cp)
            tp_ = torch.as_tensor(rng.integers(0, cfg.diffusion_steps, args.pair_batch))
            ap_ = abar[tp_][:, None, None]
            xp_t = ap_.sqrt() * xpn + (1 - ap_).sqrt() * torch.randn_like(xpn)
            loss = loss + torch.nn.functional.mse_loss(net(xp_t, tp_, cpn), xpn)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if args.decay:
            progress = min(1.0, 1.0 - (t_end - time.time()) / (args.minutes * 60))
            for g in opt.param_groups:
                g["lr"] = float(args.lr * (0.1 + 0.45 * (1 + np.cos(np.pi * progress))))
        step += 1
        losses.append(loss.item())
        if step % 100 == 0:
            log.info("step %d loss %.4f (%.2f s/step)", step, np.mean(losses), (time.time() - t0) / 100)
            losses, t0 = [], time.time()
        if step % args.val_every == 0:
            v = validate(net, val, abar_np)
            score = v["path_mm"]
            extra = ""
            if pair_val is not None:
                pv = validate(net, pair_val.clips, abar_np)
                v.update({f"pairs_{k}": val_ for k, val_ in pv.items()})
                # path error over the 2-s clips + 1 mm per 0.1 % of contact frames wrong
                score = pv["path_mm"] + 1000.0 * (1.0 - pv["contact_acc"])
                extra = (f"; held-out engine pairs: path {pv['path_mm']:.1f} mm (still {pv['still_path_mm']:.1f}), "
                         f"velocity {pv['vel_ms']:.3f} m/s, contacts {pv['contact_acc']:.3f}")
            improved = score < best
            log.info("val step %d: path %.1f mm (standing still %.1f), velocity %.3f m/s, contacts %.3f%s%s",
                     step, v["path_mm"], v["still_path_mm"], v["vel_ms"], v["contact_acc"], extra,
                     " (best)" if improved else "")
            if improved:
                best = score
                save(net, args.run / "best")
                (args.run / "best" / "val.json").write_text(json.dumps({"step": step, **v}, indent=1))
            save_checkpoint()
            last_ckpt = time.time()
        elif time.time() - last_ckpt > 240:
            save_checkpoint()
            last_ckpt = time.time()
    save_checkpoint()
    log.info("stopped at step %d", step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
