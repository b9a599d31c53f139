"""Command line: ``python -m engine run VIDEO --out RESULT.npz``, ``check``, ``--version``.

stdout carries protocol messages only (docs/protocol.md); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import signal
import sys
import traceback

from . import __version__
from .errors import EXIT_CODES, EngineError

log = logging.getLogger("engine")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        raise EngineError("usage", f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m engine", description="Video Mocap engine: video in, motion file out.")
    p.add_argument("--version", action="version", version=f"video-mocap-engine {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="process a video into a result file")
    r.add_argument("video", help="input video file")
    r.add_argument("--out", required=True, help="result file to write (.npz)")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument("--start-frame", type=int, default=None, help="first source frame (0-based)")
    r.add_argument("--end-frame", type=int, default=None, help="source frame to stop before")
    r.add_argument("--fps", type=float, default=None, help="output frame rate (subsamples the video)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--focal", type=float, default=None, help="focal length in pixels of the displayed frame")
    g.add_argument("--fov", type=float, default=None, help="horizontal field of view in degrees")
    r.add_argument("--camera", choices=("auto", "static", "moving"), default="auto")
    r.add_argument("--max-side", type=int, default=1280, help="downscale frames whose longest side exceeds this")
    r.add_argument("--keypoints", default=None,
                   help="keypoints stage (see: check --json); default blazepose, or blazepose_tracked with --person")
    r.add_argument("--person", default=None, metavar="largest|central|X,Y@FRAME",
                   help="follow one person (keypoints stage 'blazepose_tracked', chosen by this option): the "
                        "largest, the most central, or the one nearest pixel X,Y on output frame FRAME")
    r.add_argument("--keypoints-quality", choices=("full", "heavy"), default=None,
                   help="BlazePose model of the keypoints stage: full (default, ships with mediapipe) or heavy "
                        "(loses the person less often, ~3-5x slower; installed once by engine/setup_env.py "
                        "--heavy-only; "
                        "same as --option keypoints.model_complexity=2)")
    r.add_argument("--body", default="rope", help="body stage: rope (learned, default) or solve (the v1 fit); see check --json")
    r.add_argument("--trajectory", default="tp", help="trajectory stage (see: check --json); default tp, the learned prior")
    r.add_argument("--refine", action="append", default=None, metavar="NAME",
                   help="refinement stage to run after the trajectory (repeatable, in order; default: "
                        "footlock; 'none' runs none)")
    r.add_argument("--iterations", type=int, default=None, help="body-solve refinement steps (body 'solve')")
    r.add_argument("--smoothing", type=float, default=None,
                   help="landmark filter window in seconds (0 = off; larger = smoother but flattens fast moves)")
    r.add_argument("--option", action="append", default=[], metavar="KIND.KEY=VALUE",
                   help="set one config value of the chosen stage of a kind (repeatable; VALUE is JSON, "
                        "else a string), e.g. trajectory.steps=20 or trajectory.evidence=false; "
                        "'check --json' lists every stage's config")
    c = sub.add_parser("check", help="report the environment, device and models")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    return p


DEFAULT_REFINE = ("footlock",)


def parse_stage_options(items: list[str]) -> dict[str, dict[str, object]]:
    """``["trajectory.steps=20", ...]`` -> ``{"trajectory": {"steps": 20}}`` (values JSON, else strings);
    the stage's config checks names and types when it is built."""
    import json

    from .stages import KINDS

    out: dict[str, dict[str, object]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        kind, dot, name = key.partition(".")
        if not sep or not dot or kind not in KINDS or not name.isidentifier():
            raise EngineError("usage", f"--option {item!r}: expected KIND.KEY=VALUE with KIND one of {list(KINDS)}.")
        try:
            value: object = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(kind, {})[name] = value
    return out


def with_quality(choice, quality: str | None):
    """Apply ``--keypoints-quality`` (full|heavy -> the stage's ``model_complexity``) to the keypoints
    choice; a contradicting ``--option keypoints.model_complexity`` is a usage error. Heavy that is not
    installed is refused here, before the video is opened (the message names the set-up command)."""
    import dataclasses

    from . import stages
    from .pose import QUALITIES, require_model

    fields = {f.name for f in dataclasses.fields(stages.get("keypoints", choice.name).Config)}
    options = dict(choice.options)
    if quality is not None:
        if quality not in QUALITIES:
            raise EngineError("usage", f"--keypoints-quality must be one of {sorted(QUALITIES)}, got {quality!r}.")
        if "model_complexity" not in fields:
            raise EngineError("usage", f"--keypoints-quality applies to the BlazePose keypoints stages, not "
                                       f"{choice.name!r}.")
        given = options.get("model_complexity")
        if given is not None and given != QUALITIES[quality]:
            raise EngineError("usage", f"--keypoints-quality {quality} contradicts --option "
                                       f"keypoints.model_complexity={given}.")
        options["model_complexity"] = QUALITIES[quality]
    if isinstance(options.get("model_complexity"), int):
        require_model(options["model_complexity"])
    return dataclasses.replace(choice, options=options)


def run_options(args: argparse.Namespace):
    """The parsed ``run`` arguments -> pipeline.RunOptions (stage names checked against the registry)."""
    import dataclasses

    from . import stages
    from .pipeline import CameraHints, Job, RunOptions, StageChoice

    extra = parse_stage_options(args.option)

    def choice(kind: str, name: str, **options) -> StageChoice:
        fields = {f.name for f in dataclasses.fields(stages.get(kind, name).Config)}
        given = {k: v for k, v in options.items() if v is not None}
        for key, value in extra.get(kind, {}).items():
            if key not in fields:
                raise EngineError("usage", f"--option {kind}.{key}: the {kind} stage {name!r} has no setting "
                                           f"{key!r}; it has {sorted(fields)}.")
            given[key] = value
        if "iterations" in given and "iterations" not in fields:
            raise EngineError("usage", f"--iterations applies to the body stage 'solve', not {name!r}.")
        if "person" in given and "person" not in fields:
            raise EngineError("usage", f"--person applies to the keypoints stage 'blazepose_tracked', not {name!r}.")
        return StageChoice(name, {k: v for k, v in given.items() if k in fields})

    keypoints = choice("keypoints", args.keypoints or ("blazepose_tracked" if args.person else
                                                       stages.DEFAULTS["keypoints"]), person=args.person)
    keypoints = with_quality(keypoints, getattr(args, "keypoints_quality", None))

    return RunOptions(
        job=Job(video=args.video, out=args.out, start_frame=args.start_frame, end_frame=args.end_frame,
                fps=args.fps, max_side=args.max_side),
        camera=CameraHints(mode=args.camera, focal=args.focal, fov=args.fov),
        device=args.device,
        keypoints=keypoints,
        body=choice("body", args.body, iterations=args.iterations, smoothing=args.smoothing),
        trajectory=choice("trajectory", args.trajectory, smoothing=args.smoothing),
        refine=tuple(choice("refine", n) for n in (args.refine or list(DEFAULT_REFINE)) if n != "none"),
    )


def _setup_stdio():
    """Keep a private handle on the real stdout for protocol messages; route fd 1 to stderr."""
    from .protocol import Protocol

    for s in (sys.stdout, sys.stderr):
        try:
            s.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    proto = Protocol()
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _check(as_json: bool) -> int:
    report: dict = {"engine_version": __version__, "python": platform.python_version(), "problems": []}
    for mod in ("numpy", "torch", "mediapipe", "cv2", "av", "scipy", "roma", "safetensors", "anny"):
        try:
            m = importlib.import_module(mod)
            report[mod] = getattr(m, "__version__", "?")
        except Exception as e:  # noqa: BLE001 - report every broken import
            report[mod] = None
            if mod != "anny":
                report["problems"].append(f"{mod}: {e}")
    try:
        import torch

        report["cuda_available"] = bool(torch.cuda.is_available())
        report["device"] = "cuda" if report["cuda_available"] else "cpu"
        if report["cuda_available"]:
            report["cuda_device"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        report["cuda_available"] = False
        report["device"] = None
    try:
        with open(os.devnull, "w"):
            from .pose import BlazePose

            BlazePose().close()
        report["pose_model"] = "ok"
    except Exception as e:  # noqa: BLE001
        report["pose_model"] = None
        report["problems"].append(f"pose model: {e}")
    try:   # which --keypoints-quality values this environment can run (Heavy is an opt-in install)
        from .pose import quality_status

        report["keypoint_quality"] = quality_status()
    except Exception as e:  # noqa: BLE001
        report["keypoint_quality"] = None
        report["problems"].append(f"keypoint quality: {e}")
    try:
        from . import stages

        report["stages"] = stages.describe_all()
    except Exception as e:  # noqa: BLE001
        report["stages"] = None
        report["problems"].append(f"stages: {e}")
    report["ok"] = not report["problems"]
    if as_json:
        sys.__stdout__.write(json.dumps(report) + "\n")
    else:
        for k, v in report.items():
            sys.__stdout__.write(f"{k}: {v}\n")
    sys.__stdout__.flush()
    return 0 if report["ok"] else EXIT_CODES["environment"]


def _restore_default_signals(early: list[int]) -> None:
    """Commands other than ``run`` die on SIGTERM as usual; one caught during start-up is re-sent."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.default_int_handler)
    for sig in early[:1]:
        os.kill(os.getpid(), sig)


def main(argv: list[str] | None = None, early_signals: list[int] | None = None) -> int:
    """``early_signals``: SIGTERM/SIGINT caught before this ran (engine/__main__.py); the run cancels."""
    early = early_signals if early_signals is not None else []
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("VIDEO_MOCAP_LOG", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "run":
        _restore_default_signals(early)
    from .environment import use_bundled_anny_cache

    use_bundled_anny_cache()
    if argv and argv[0] == "check":
        try:
            args = build_parser().parse_args(argv)
        except EngineError as e:
            print(e.message, file=sys.stderr)
            return e.exit_code
        return _check(args.json)
    if not argv or argv[0] in ("-h", "--help", "--version") or argv[0] not in ("run",):
        try:
            build_parser().parse_args(argv)
        except EngineError as e:
            print(e.message, file=sys.stderr)
            return e.exit_code
        return 0

    proto = _setup_stdio()
    proto.install_signal_handlers()
    if early:
        proto.request_cancel()
    proto.watch_stdin()
    code = 0
    try:
        proto.interruptible = True   # from here a cancel ends the run at once (Protocol.stop_now)
        proto.check_cancel()
        args = build_parser().parse_args(argv)
        # Options and output are checked before the slow imports (numpy, torch, mediapipe).
        from .options import check_numbers, check_output

        check_numbers(args)
        check_output(args.out, args.video)
        proto.check_cancel()
        from .pipeline import run

        try:
            run(run_options(args), proto)
        finally:
            proto.interruptible = False
    except EngineError as e:
        proto.interruptible = False
        code = e.exit_code
        log.info("stopped: %s (%s)", e.message, e.code)
        proto.error(e.code, e.message, code)
    except KeyboardInterrupt:
        code = EXIT_CODES["cancelled"]
        proto.error("cancelled", "Cancelled by the user.", code)
    except Exception as e:  # noqa: BLE001 - a bug, a broken environment, or a wrapped cancel
        proto.interruptible = False
        traceback.print_exc()
        if proto.cancelled:   # a library turned the Cancelled raised inside it into its own error
            code = EXIT_CODES["cancelled"]
            proto.error("cancelled", "Cancelled by the user.", code)
        elif isinstance(e, ImportError):
            code = EXIT_CODES["environment"]
            proto.error("environment", f"The engine environment is incomplete: {e}. Run the engine set-up "
                                       "again.", code)
        else:
            code = EXIT_CODES["internal"]
            proto.error("internal", f"Internal error: {type(e).__name__}: {e}", code)
    proto.done(code == 0, code)
    return code
