"""Replay planted bugs: does the test suite catch each one? (issue #12; docs/testing.md)

    .venv/bin/python -m scripts.planted_bugs [--only NAME[,NAME...]] [--list] [--no-baseline] [--markdown OUT.md]

Each bug is a small textual patch (file, old text, new text). The tracked (and untracked, not ignored)
files of the repository are copied once to a temporary folder; each patch is applied there alone, the
bug's pytest selection runs in that copy, and the file is restored. The working tree is never touched.
A table ``bug -> caught? -> by which tests`` is printed at the end; the exit status is 0 only when every
bug is caught.

Every patch's old text must occur exactly once in its file: when the code moves (the engine refactor,
issue #7), the script stops before running anything and names the stale patches. Update them to plant
the same mistake in the new code; never drop one silently. A bug may list alternatives (``alt``: the
same mistake in another version of the code); the first that applies exactly once is planted.

Before the bugs, a baseline run of all selected tests on the unpatched copy must pass (``--no-baseline``
skips it), otherwise "caught" would mean nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ACC = "tests/test_accuracy.py"
ACC_V1 = "tests/test_accuracy.py::test_v1_fit_pose_and_jitter"
TRAJ = "tests/test_trajectory.py"
SOLVE = "tests/test_solve.py"
ATOMIC = "tests/test_atomic_cancel.py"
CORE = "tests/test_addon_core.py"
RESULT = "tests/test_protocol_result.py"
CAM = "tests/test_camera_motion.py"
FOOT = "tests/test_footlock.py"
TP = "tests/test_tp.py"


@dataclass(frozen=True)
class Bug:
    name: str
    area: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str
    # the same mistake in other versions of the code, (file, old, new): the first of (file, old, new) and
    # these whose old text occurs exactly once is planted (kept while the engine refactor, #7, is merged)
    alt: tuple[tuple[str, str, str], ...] = ()

    def candidates(self) -> tuple[tuple[str, str, str], ...]:
        return ((self.file, self.old, self.new),) + self.alt


def resolve(root: Path, bug: Bug) -> tuple[str, str, str] | None:
    """The (file, old, new) of ``bug`` that applies to the code under ``root``, or None."""
    for f, old, new in bug.candidates():
        path = root / f
        if path.is_file() and path.read_text().count(old) == 1:
            return f, old, new
    return None


BUGS: tuple[Bug, ...] = (
    # -- trajectory -------------------------------------------------------------------------------------
    Bug("traj_xy_swapped", "trajectory", "engine/trajectory.py",
        "X, Y, Z = points_cv[t, ok].T", "Y, X, Z = points_cv[t, ok].T", (TRAJ, ACC),
        "x and y of the body points swapped in camera_translation"),
    Bug("traj_depth_sign", "trajectory", "engine/trajectory.py",
        "A[:n, 0], A[:n, 2], b[:n] = f, -du, du * Z - f * X", "A[:n, 0], A[:n, 2], b[:n] = f, du, du * Z - f * X",
        (TRAJ, ACC), "sign flip of the depth coefficient (u rows) in camera_translation"),
    Bug("traj_weights_ignored", "trajectory", "engine/trajectory.py",
        "ok = (w[t] > 0.05) & np.all(np.isfinite(uv[t]), -1)", "ok = (w[t] > -1.0) & np.all(np.isfinite(uv[t]), -1)",
        (TRAJ, ACC), "camera_translation uses landmarks the detector flagged invisible"),
    Bug("traj_depth_smoothing_0", "trajectory", "engine/pipeline.py",
        "t_cam[:, 2] = trajectory.smooth(t_cam[:, 2:], fps_out, 1.0)[:, 0]",
        "t_cam[:, 2] = trajectory.smooth(t_cam[:, 2:], fps_out, 0.0)[:, 0]", (ACC,),
        "depth smoothing window set to 0",
        alt=(("engine/stages/trajectory_perspective.py", "depth_smoothing: float = 1.0", "depth_smoothing: float = 0.0"),)),
    Bug("traj_outlier_tol_x10", "trajectory", "engine/trajectory.py",
        "rel_tol: float = 0.15", "rel_tol: float = 1.5", (TRAJ, ACC),
        "depth-outlier tolerance x10 (spikes kept)"),
    Bug("traj_outlier_inverted", "trajectory", "engine/trajectory.py",
        "t[np.abs(filled - med) > rel_tol * med] = np.nan", "t[np.abs(filled - med) < rel_tol * med] = np.nan",
        (TRAJ, ACC), "depth-outlier test inverted (good frames rejected)"),
    Bug("world_left_handed", "trajectory", "engine/trajectory.py",
        "X = np.cross(fwd, up)", "X = np.cross(up, fwd)", (TRAJ, ACC),
        "world X axis flipped (left-handed world frame)"),
    Bug("world_tilt_clamp_3deg", "trajectory", "engine/trajectory.py",
        "if ang > 35.0:", "if ang > 3.5:", (TRAJ, ACC),
        "camera tilt prior clamped at 3.5 degrees instead of 35"),
    Bug("world_ground_sign", "trajectory", "engine/trajectory.py",
        "origin = first - up * (first @ up - ground_h)", "origin = first + up * (first @ up - ground_h)",
        (TRAJ, ACC), "ground height sign flipped when placing the world origin"),
    # -- foot contacts --------------------------------------------------------------------------------
    Bug("contact_height_x10", "contacts", "engine/contacts.py",
        "HEIGHT = 0.06 ", "HEIGHT = 0.6 ", (TRAJ, ACC), "foot-contact height tolerance x10"),
    Bug("contact_speed_x10", "contacts", "engine/contacts.py",
        "SPEED = 0.30 ", "SPEED = 3.0 ", (TRAJ, ACC), "foot-contact speed tolerance x10"),
    Bug("contact_speed_forward", "contacts", "engine/contacts.py",
        "v = np.gradient(points, axis=0) * fps", "v = np.diff(points, axis=0, append=points[-1:]) * fps",
        (TRAJ, ACC), "foot speed from the next step only (stance ends a frame late)"),
    Bug("contact_off_by_one", "contacts", "engine/contacts.py",
        "return (moving < speed) & (above < height)", "return np.roll((moving < speed) & (above < height), 3, axis=0)",
        (TRAJ, ACC), "contacts shifted 3 frames late"),
    # -- camera decision ------------------------------------------------------------------------------
    Bug("camera_static_inverted", "camera", "engine/pipeline.py",
        "camera_static = camera_moving is not True", "camera_static = camera_moving is True", (ACC,),
        "camera_static inverted (a false 'camera moving' warning on a static clip)",
        alt=(("engine/stages/trajectory_perspective.py", "return clip.camera_moving is not True",
              "return clip.camera_moving is True"),)),
    Bug("camera_motion_threshold_x10", "camera", "engine/camera_motion.py",
        "def is_moving(self, threshold: float = 0.004)", "def is_moving(self, threshold: float = 0.04)",
        (TRAJ, ACC), "camera-motion threshold x10 (pans read as static)"),
    # -- body solve -----------------------------------------------------------------------------------
    Bug("solve_visibility_dropped", "solve", "engine/solve.py",
        "w = torch.stack([vis[:, idx].min(1).values for idx in _T_LMS], 1) * _T_WEIGHT.to(dev, dt)",
        "w = torch.ones(T, len(_T_LMS), dtype=dt, device=dev) * _T_WEIGHT.to(dev, dt)", (SOLVE, ACC),
        "the solve's visibility weight dropped"),
    Bug("solve_thigh_reference_10pc", "solve", "engine/solve.py",
        '("right_hip", "right_knee")]), 0.40)', '("right_hip", "right_knee")]), 0.44)', (SOLVE, ACC),
        "reference thigh length changed by 10 %"),
    Bug("solve_measure_vis_threshold", "solve", "engine/solve.py",
        "ok = (w > 0.6) & np.isfinite(d)", "ok = (w > 0.0) & np.isfinite(d)", (SOLVE, ACC),
        "bone lengths measured from landmarks of any visibility"),
    Bug("solve_knee_hinge_sign", "solve", "engine/solve.py",
        '"left_knee": (0, +1.0), "right_knee": (0, +1.0),', '"left_knee": (0, -1.0), "right_knee": (0, -1.0),',
        (SOLVE, ACC), "knee hinge prior bends the wrong way"),
    Bug("solve_up_axis_sign", "solve", "engine/solve.py",
        "return np.stack([world_lm[..., 0], world_lm[..., 2], -world_lm[..., 1]], axis=-1)",
        "return np.stack([world_lm[..., 0], world_lm[..., 2], world_lm[..., 1]], axis=-1)", (SOLVE, ACC),
        "BlazePose y not negated into the body frame (upside-down body)",
        alt=(("engine/geometry/frames.py", "return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)",
              "return np.stack([points[..., 0], points[..., 2], points[..., 1]], axis=-1)"),)),
    Bug("solve_no_smoothness", "solve", "engine/pipeline.py",
        "smooth_weight: float = 20.0", "smooth_weight: float = 0.0", (ACC_V1,),
        "the solve's temporal smoothness term dropped",
        alt=(("engine/stages/body_solve.py", "w_smooth: float = 20.0", "w_smooth: float = 0.0"),)),
    Bug("landmark_filter_off", "solve", "engine/cli.py",
        'r.add_argument("--smoothing", type=float, default=0.17,',
        'r.add_argument("--smoothing", type=float, default=0.0,', (ACC_V1,),
        "the landmark filter switched off (the CLI's default)",
        alt=(("engine/stages/body_solve.py", "    smoothing: float = 0.17\n    # refinement",
              "    smoothing: float = 0.0\n    # refinement"),)),
    # -- result file, cancel, benchmark --------------------------------------------------------------
    Bug("result_direct_write", "result", "engine/result.py",
        'fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)',
        "fd, tmp = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), str(path)", (ATOMIC, RESULT),
        "the result written straight to the target (no temp file, no rename)",
        alt=(("engine/result.py", 'fd, tmp = tempfile.mkstemp(prefix=".vm-", suffix=".tmp", dir=folder)',
              "fd, tmp = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), str(path)"),)),
    Bug("result_temp_left_behind", "result", "engine/result.py",
        "            os.unlink(tmp)\n", "            pass\n", (ATOMIC, RESULT),
        "a failed write leaves its temp file behind"),
    Bug("cancel_never_kills", "cancel", "addon/core/engine.py",
        "            if waited > CANCEL_GRACE_S + KILL_AFTER_S:\n                proc.kill()",
        "            if waited > CANCEL_GRACE_S + KILL_AFTER_S:\n                proc.terminate()", (ATOMIC, CORE),
        "the add-on's cancel never escalates to SIGKILL"),
    Bug("cancel_never_terminates", "cancel", "addon/core/engine.py",
        "            elif waited > CANCEL_GRACE_S:\n                proc.terminate()",
        "            elif waited > CANCEL_GRACE_S:\n                pass", (ATOMIC, CORE),
        "the add-on's cancel never sends SIGTERM"),
    Bug("bench_pa_mpjpe_self", "benchmark", "scripts/bench_accuracy.py",
        'out["pa_mpjpe"] = metrics.pa_mpjpe(pred_cam, gt_cam)', 'out["pa_mpjpe"] = metrics.pa_mpjpe(gt_cam, gt_cam)',
        (ACC,), "the benchmark scores the ground truth against itself for PA-MPJPE"),
    Bug("bench_frames_misaligned", "benchmark", "scripts/bench_accuracy.py",
        "Gi, oi = G[idx[keep]], (occ[idx[keep]] if occ is not None else None)",
        "Gi, oi = G[np.minimum(idx[keep] + 1, len(G) - 1)], (occ[idx[keep]] if occ is not None else None)",
        (ACC,), "the benchmark compares each frame with the next ground-truth frame"),
    # -- moving camera and foot locking (added with the stage seam) ------------------------------------
    Bug("camera_rotation_transposed", "camera", "engine/camera_motion.py",
        "return Rotation.from_matrix(M).as_matrix()                        # nearest rotations",
        "return Rotation.from_matrix(M).as_matrix().transpose(0, 2, 1)", (CAM,),
        "camera rotations of the pure-rotation model transposed (a pan read backwards)"),
    Bug("camera_plane_translation_sign", "camera", "engine/camera_motion.py",
        "t = d * (M @ n / s - R @ n)", "t = -d * (M @ n / s - R @ n)", (CAM,),
        "the floor-plane camera translation's sign flipped"),
    Bug("footlock_knee_backwards", "refine", "engine/footlock.py",
        "Q_knee = _axis_angle(axis, cur - want)", "Q_knee = _axis_angle(axis, want - cur)", (FOOT,),
        "the IK bends the knee the wrong way (the ankle misses its target)"),
    Bug("footlock_pin_sign", "refine", "engine/footlock.py",
        "out[1:, :2] -= correction", "out[1:, :2] += correction", (FOOT, ACC),
        "the planted feet's slide added to the root instead of taken out",
        alt=(("engine/footlock.py", "out[1:, :2] -= np.cumsum(slide, axis=0)", "out[1:, :2] += np.cumsum(slide, axis=0)"),)),
    Bug("footlock_orientation_not_held", "refine", "engine/footlock.py",
        "Rw_foot = Rotation.from_rotvec(turn * weight[on, None]).as_matrix() @ Rw[on, ankle]",
        "Rw_foot = Rw[on, ankle]", (FOOT,), "a planted foot keeps wobbling (its ball slides)"),
    # -- TP (trajectory prior) --------------------------------------------------------------------------
    Bug("tp_heading_sign", "tp", "engine/tp/representation.py",
        "np.arctan2(facing[:, 1], facing[:, 0]) + np.pi / 2", "np.arctan2(facing[:, 1], facing[:, 0]) - np.pi / 2",
        (TP, ACC), "the heading is off by half a turn (the body walks backwards)"),
    Bug("tp_ddim_eps", "tp", "engine/tp/diffusion.py",
        "eps = (x - np.sqrt(a_t) * x0) / np.sqrt(1.0 - a_t)", "eps = (x - a_t * x0) / np.sqrt(1.0 - a_t)",
        (TP,), "DDIM recovers the noise with the wrong signal scale"),
    Bug("tp_blend_flat", "tp", "engine/tp/diffusion.py",
        "out[i, :ov] = np.minimum(out[i, :ov], (np.arange(ov) + 1) / (ov + 1))", "out[i, :ov] = 1.0",
        (TP,), "overlapping windows are averaged without ramps (a seam where a window starts)"),
    Bug("tp_guide_sign", "tp", "engine/stages/trajectory_tp.py",
        "x0[:, dims] += w * (ev[:, dims] - x0[:, dims])", "x0[:, dims] -= w * (ev[:, dims] - x0[:, dims])",
        (TP, ACC), "the guidance pushes away from the camera's evidence"),
    Bug("tp_integrate_unturned", "tp", "engine/tp/representation.py",
        'step = np.einsum("tab,tb->ta", yaw_matrices(yaw), v) / fps', 'step = np.einsum("tba,tb->ta", yaw_matrices(yaw), v) / fps',
        (TP, ACC), "the path is integrated with the heading turned the wrong way"),
)


def check_patches(root: Path, bugs: list[Bug]) -> list[str]:
    """Problems with the patches against the files under ``root`` (old text missing or ambiguous)."""
    problems = []
    for b in bugs:
        if resolve(root, b) is None:
            for f, old, _ in b.candidates():
                path = root / f
                n = path.read_text().count(old) if path.is_file() else 0
                problems.append(f"{b.name}: old text found {n} times in {f} (must be exactly once): {old!r}")
        for t in b.tests:
            if not (root / t.split("::")[0]).exists():
                problems.append(f"{b.name}: test selection {t} does not exist")
    return problems


def copy_tree(src: Path, dst: Path) -> None:
    """The repository's files (tracked and untracked-not-ignored) under ``dst``; outside git (an unpacked
    archive) everything but environments, caches and build outputs."""
    p = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=src,
                       capture_output=True)
    if p.returncode != 0:
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git", ".venv*", ".cache", "__pycache__", "dist",
                                                                "out", "*.pyc"))
        return
    files = p.stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        rel = f.decode()
        s = src / rel
        if not s.is_file():  # deleted in the working tree, or a submodule
            continue
        d = dst / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, d)


_OUTCOME = re.compile(r"^(FAILED|ERROR) (\S+)")


def run_tests(repo: Path, tests: tuple[str, ...], env: dict[str, str], timeout: float) -> tuple[bool, list[str], str]:
    """(all passed, failing test ids, output tail) for one pytest selection in ``repo``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "--tb=no", "-rfEs", "-p", "no:cacheprovider", *tests]
    try:
        p = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, [f"(timed out after {timeout:.0f} s)"], ""
    failed = [m.group(2) for line in p.stdout.splitlines() if (m := _OUTCOME.match(line))]
    if p.returncode != 0 and not failed:
        failed = [f"(pytest exit {p.returncode})"]
    return p.returncode == 0, failed, p.stdout[-3000:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="bug name(s), comma-separated; repeatable")
    ap.add_argument("--list", action="store_true", help="list the bugs and exit")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unpatched baseline run")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run")
    args = ap.parse_args(argv)

    wanted = {n for arg in args.only for n in arg.split(",") if n}
    unknown = wanted - {b.name for b in BUGS}
    if unknown:
        print(f"unknown bug name(s): {', '.join(sorted(unknown))}; see --list", file=sys.stderr)
        return 2
    bugs = [b for b in BUGS if not wanted or b.name in wanted]
    if args.list:
        for b in bugs:
            print(f"{b.name:30s} {b.area:10s} {b.file:28s} {b.what}" + (f" (or in {', '.join(a[0] for a in b.alt)})" if b.alt else ""))
        return 0
    problems = check_patches(ROOT, bugs)
    if problems:
        print("Stale patches (the code moved): update them to plant the same bug in the new code.\n  "
              + "\n  ".join(problems), file=sys.stderr)
        return 2

    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    # the scratch copy lives elsewhere: point the tests at the shared data beside this repository
    from scripts.vmkit.mocap.dataset import DEFAULT_ROOT

    env.setdefault("VIDMOCAP_MOCAP_DIR", str(DEFAULT_ROOT))
    t_all = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="planted_") as tmp:
        repo = Path(tmp) / "repo"  # a valid package name: pytest imports the repository's __init__.py
        copy_tree(ROOT, repo)
        if not args.no_baseline:
            selection = tuple(dict.fromkeys(t for b in bugs for t in b.tests))
            ok, failed, tail = run_tests(repo, selection, env, args.timeout)
            print(f"baseline ({' '.join(selection)}): {'green' if ok else 'RED'}", file=sys.stderr)
            skipped = [line for line in tail.splitlines() if line.startswith("SKIPPED")]
            if skipped:  # a skipped test catches nothing: say so before the table
                print("WARNING: tests skipped in the baseline; bugs only they catch will read as missed:\n  "
                      + "\n  ".join(skipped), file=sys.stderr)
            if not ok:
                print(tail + "\nThe unpatched suite fails: fix that first (" + ", ".join(failed) + ")",
                      file=sys.stderr)
                return 2
        for b in bugs:
            f, old, new = resolve(repo, b)  # type: ignore[misc]  (checked above)
            path = repo / f
            original = path.read_text()
            path.write_text(original.replace(old, new, 1))
            t0 = time.perf_counter()
            try:
                ok, failed, _ = run_tests(repo, b.tests, env, args.timeout)
            finally:
                path.write_text(original)
            secs = time.perf_counter() - t0
            rows.append((b, not ok, failed, secs))
            print(f"{b.name}: {'caught' if not ok else 'MISSED'} ({secs:.0f} s) {' '.join(failed)}",
                  file=sys.stderr)
    caught = sum(r[1] for r in rows)
    lines = [f"Planted bugs caught: {caught} of {len(rows)} ({time.perf_counter() - t_all:.0f} s)", "",
             "| bug | area | what | caught | by |", "|---|---|---|---|---|"]
    for b, hit, failed, _ in rows:
        names = [f"`{f.split('/')[-1]}`" for f in failed]
        by = (", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")) if hit else "-"
        lines.append(f"| {b.name} | {b.area} | {b.what} | {'yes' if hit else '**no**'} | {by} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
