"""Person selection, identity jumps, lost ranges, cuts and gaps on small synthetic inputs (no model).

The tracked keypoints stage runs with a fake BlazePose: "people" are coloured rectangles; the fake
returns landmarks laid out in the most prominent rectangle of the image it is given (as BlazePose
returns one person), so crops, tiles, selection, identity tests and re-acquisition run for real.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import cuts, segments, tracking
from engine.errors import EngineError
from engine.landmarks import LM
from engine.pose import Detection, LandmarkBuffer


# ---- person choice --------------------------------------------------------------------------------
def test_parse_person():
    assert tracking.parse_person("largest").mode == "largest"
    assert tracking.parse_person(" Central ").mode == "central"
    p = tracking.parse_person("320, 180@12")
    assert (p.mode, p.x, p.y, p.frame) == ("point", 320.0, 180.0, 12)
    assert tracking.parse_person("10.5,3").frame == 0
    for bad in ("biggest", "1,2,3", "x,y@1", "3@4"):
        with pytest.raises(EngineError) as e:
            tracking.parse_person(bad)
        assert e.value.code == "usage"


def test_choose_rules():
    W, H = 1000, 400
    boxes = [np.array([100, 200, 60, 150]), np.array([520, 190, 50, 120]), np.array([850, 200, 80, 300])]
    assert tracking.choose(boxes, tracking.PersonChoice("largest"), W, H) == 2
    assert tracking.choose(boxes, tracking.PersonChoice("central"), W, H) == 1
    assert tracking.choose(boxes, tracking.PersonChoice("point", 110, 250), W, H) == 0
    # a point just outside a box: that box; far from every box: nobody (not someone else)
    assert tracking.choose(boxes, tracking.PersonChoice("point", 560, 200), W, H) == 1
    assert tracking.choose(boxes, tracking.PersonChoice("point", 600, 20), W, H) is None
    assert tracking.choose([], tracking.PersonChoice("largest"), W, H) is None


def test_identity_jump_cues():
    pred = np.array([100.0, 100.0, 50.0, 150.0])
    same = np.array([110.0, 104.0, 52.0, 148.0])
    assert tracking.identity_jump(pred, 50.0, same, 52.0, 0.05) is None
    far = np.array([300.0, 100.0, 50.0, 150.0])   # 4 torso lengths away in one frame
    assert tracking.identity_jump(pred, 50.0, far, 50.0, 0.05).startswith("position")
    # the same move is allowed after many missed frames
    assert tracking.identity_jump(pred, 50.0, far, 50.0, 0.05, frames=8) is None
    assert tracking.identity_jump(pred, 50.0, same, 110.0, 0.05).startswith("scale")
    near = np.array([130.0, 104.0, 52.0, 148.0])   # 0.6 torso lengths off
    assert tracking.identity_jump(pred, 50.0, near, 50.0, 0.8).startswith("appearance")
    # exactly where the person should be, colour alone does not reject (lighting, a poor first reference)
    assert tracking.identity_jump(pred, 50.0, np.array([104.0, 102.0, 50.0, 150.0]), 50.0, 0.8) is None
    # a moderately different colour alone is tolerated (lighting), not with a large move
    assert tracking.identity_jump(pred, 50.0, same, 50.0, 0.45) is None
    half = np.array([140.0, 100.0, 50.0, 150.0])
    assert tracking.identity_jump(pred, 50.0, half, 50.0, 0.45).startswith("appearance")


def test_box_predictor_constant_velocity():
    p = tracking.BoxPredictor(np.array([0.0, 0.0, 10.0, 20.0]), damping=0.0)
    p.update(np.array([5.0, 1.0, 10.0, 20.0]))
    np.testing.assert_allclose(p.predict(), [10.0, 2.0, 10.0, 20.0])
    p.miss()
    assert p.predict()[0] > 10.0   # still moving on while missed


def test_ranges_and_description():
    f = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert tracking.ranges(f) == [(1, 2), (5, 5), (7, 9)]
    assert tracking.ranges(np.zeros(4, bool)) == []
    assert tracking.describe_ranges(tracking.ranges(f), np.arange(100, 110)) == "101-102, 105, 107-109"


def test_torso_histogram_tells_colours_apart():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :50] = (200, 30, 30)
    img[:, 50:] = (30, 30, 200)
    lm = fake_landmarks(0.05, 0.1, 0.4, 0.8)
    lm_right = fake_landmarks(0.55, 0.1, 0.4, 0.8)
    lm_left2 = fake_landmarks(0.08, 0.15, 0.35, 0.7)
    a, b, c = (tracking.torso_histogram(img, x) for x in (lm, lm_right, lm_left2))
    assert tracking.hist_distance(a, c) < 0.2 < 0.6 < tracking.hist_distance(a, b)


# ---- cuts -----------------------------------------------------------------------------------------
def textured(seed: int, shift: int = 0, size=(120, 200)) -> np.ndarray:
    """A "shot": a colour gradient with a few large coloured blocks, panned by ``shift`` pixels."""
    rng = np.random.default_rng(seed)
    W = size[1] + 80
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    ramp = np.linspace(0, 1, W)[None, :, None]
    img = np.repeat(c0 * (1 - ramp) + c1 * ramp, size[0], 0)
    for _ in range(6):
        x, y = rng.integers(0, W - 40), rng.integers(0, size[0] - 30)
        img[y:y + rng.integers(15, 60), x:x + rng.integers(15, 60)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8)[:, shift:shift + size[1]])


def test_hard_cut_and_cross_fade_found_pan_is_not():
    fps = 25.0
    a = [textured(1, shift=2 * i) for i in range(30)]           # a slow pan
    b = [textured(2, shift=2 * i) for i in range(30)]
    c = [textured(3) for _ in range(30)]
    n = 10
    fade = [((1 - (k + 1) / (n + 1)) * b[20 + k] + (k + 1) / (n + 1) * c[k]).astype(np.uint8) for k in range(n)]
    frames = a + b[:20] + fade + c[n:]
    sigs = [cuts.signature(f) for f in frames]
    found, fades = cuts.find_cuts(sigs, fps)
    assert 30 in found                      # the hard cut
    assert len(found) == 2 and len(fades) == 1
    fa, fb = fades[0]
    assert abs(fa - 50) <= 2 and abs(fb - 59) <= 2 and abs(found[1] - 55) <= 2
    # the pan alone: no cut
    assert cuts.find_cuts([cuts.signature(f) for f in a], fps) == ([], [])
    assert cuts.is_hard_cut(sigs[29], sigs[30]) and not cuts.is_hard_cut(sigs[10], sigs[11])
    np.testing.assert_array_equal(cuts.segment_ids(6, [2, 4]), [0, 0, 1, 1, 2, 2])


# ---- gaps and speed -------------------------------------------------------------------------------
def test_limit_speed_caps_a_jump_and_keeps_the_rest():
    fps = 30.0
    t = np.arange(90) / fps
    root = np.stack([1.0 * t, np.zeros_like(t), np.full_like(t, 0.9)], 1)   # walking 1 m/s
    root[40:44, 0] += 3.6                                                  # a switch to someone 3.6 m away
    out, moved = segments.limit_speed(root, fps)
    v = segments.root_speed(out, fps)
    assert v.max() <= 12.0 + 1e-6
    assert moved > 0
    np.testing.assert_allclose(out[:20], root[:20])
    np.testing.assert_allclose(out[70:], root[70:])
    # a jump at a cut between shots is not a speed
    shot = np.r_[np.zeros(45, np.int32), np.ones(45, np.int32)]
    jump = root.copy()
    jump[:40, 0] -= 3.6
    jump[40:44] = root[40:44] - [3.6, 0, 0]
    jump[45:, 0] += 20.0
    out2, _ = segments.limit_speed(jump, fps, shot)
    np.testing.assert_allclose(out2[45:], jump[45:])
    assert segments.root_speed(out2, fps, shot).max() <= 12.0 + 1e-6


def make_track(T: int, valid=None):
    buf = LandmarkBuffer()
    valid = np.ones(T, bool) if valid is None else valid
    for t in range(T):
        det = Detection(image=fake_landmarks(0.4, 0.2, 0.2, 0.6), world=np.zeros((33, 3), np.float32),
                        visibility=np.full(33, 0.9, np.float32)) if valid[t] else None
        buf.append(t / 10.0, 100 + t, det)
    return buf.track()


def test_prepare_marks_lost_frames_and_warns_with_the_range():
    track = make_track(20)
    lost = np.zeros(20, bool)
    lost[5:9] = True
    warnings = []
    rec = {"lost": lost, "boxes": np.zeros((20, 4), np.float32), "events": []}
    out_track, shots = segments.prepare(track, {"tracking": rec}, 10.0, lambda c, m: warnings.append((c, m)))
    assert not out_track.valid[5:9].any() and out_track.valid[:5].all() and out_track.valid[9:].all()
    assert np.isnan(out_track.image[6]).all() and (out_track.visibility[6] == 0).all()
    codes = [c for c, _ in warnings]
    assert codes == ["person_lost"]
    assert "105-108" in warnings[0][1]   # source frame numbers
    fields = segments.result_fields(shots, 20, (640, 360))
    assert fields["lost"][5:9].all() and fields["shot"].max() == 0 and fields["cuts"].shape == (0,)


def test_trajectory_runs_per_shot():
    from engine.stages.records import Trajectory

    calls = []

    def stage(track, motion, clip, report):
        calls.append((len(track), int(track.frame_index[0])))
        T = len(track)
        root = np.cumsum(np.full((T, 3), 0.01), 0) + 5.0 * len(calls)
        return Trajectory(root_world=root, root_orient_world=np.repeat(np.eye(3)[None], T, 0),
                          camera_extrinsics=np.repeat(np.eye(4)[None], T, 0), camera_static=True, info={})

    class Motion:  # only what slice_motion touches
        pass

    import dataclasses

    @dataclasses.dataclass
    class M:
        rotations: np.ndarray
        root: np.ndarray
        joints: np.ndarray
        joint_confidence: np.ndarray
        anchors: np.ndarray
        anchor_weights: np.ndarray

    T = 30
    motion = M(*(np.zeros((T, 2)) for _ in range(6)))
    valid = np.ones(T, bool)
    valid[20:] = False    # the last shot has no detection at all
    track = make_track(T, valid)
    shot = cuts.segment_ids(T, [12, 20])
    traj = segments.trajectory_per_shot(stage, track, motion, None, lambda i, n: None, shot)
    assert calls == [(12, 100), (8, 112)]
    assert traj.root_world.shape == (T, 3)
    # the second shot starts its own path; the empty third holds the second's last position
    assert abs(traj.root_world[12, 0] - 10.01) < 1e-9
    np.testing.assert_allclose(traj.root_world[20:], np.repeat(traj.root_world[19:20], 10, 0))


# ---- the tracked stage with a fake BlazePose --------------------------------------------------------
PALETTE = {"red": (220, 40, 40), "blue": (40, 40, 220), "green": (40, 200, 40)}


def fake_landmarks(x0: float, y0: float, w: float, h: float) -> np.ndarray:
    """33 landmarks of a standing figure filling the normalised box (x0, y0, w, h)."""
    lm = np.zeros((33, 3), np.float32)
    lm[:, 0] = x0 + w * 0.5
    lm[:, 1] = y0 + h * 0.1
    for side, sx in (("left", 0.75), ("right", 0.25)):
        lm[LM[f"{side}_shoulder"], :2] = (x0 + w * sx, y0 + h * 0.25)
        lm[LM[f"{side}_hip"], :2] = (x0 + w * sx, y0 + h * 0.55)
        lm[LM[f"{side}_elbow"], :2] = (x0 + w * (0.95 if sx > 0.5 else 0.05), y0 + h * 0.4)
        lm[LM[f"{side}_wrist"], :2] = (x0 + w * (1.0 if sx > 0.5 else 0.0), y0 + h * 0.5)
        lm[LM[f"{side}_knee"], :2] = (x0 + w * sx, y0 + h * 0.75)
        for n in ("ankle", "heel", "foot_index"):
            lm[LM[f"{side}_{n}"], :2] = (x0 + w * sx, y0 + h * 1.0)
    lm[0, :2] = (x0 + w * 0.5, y0)
    return lm


class FakePose:
    """Finds the colour rectangle with the most pixels in the image it is given."""

    def __init__(self, **kw):
        self.static = kw.get("static_image_mode", False)

    def __call__(self, rgb):
        H, W = rgb.shape[:2]
        best = None
        for col in PALETTE.values():
            ys, xs = np.nonzero(np.all(rgb == np.array(col, np.uint8), -1))
            if len(xs) > 30 and (best is None or len(xs) > best[0]):
                best = (len(xs), xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        if best is None:
            return None
        _, x0, y0, x1, y1 = best
        return Detection(image=fake_landmarks(x0 / W, y0 / H, (x1 - x0) / W, (y1 - y0) / H),
                         world=np.zeros((33, 3), np.float32), visibility=np.full(33, 0.95, np.float32))

    def reset(self):
        pass

    def close(self):
        pass


def scene(people: list[tuple[str, int, int, int, int]], size=(400, 120)) -> np.ndarray:
    img = np.full((size[1], size[0], 3), 128, np.uint8)
    for name, x, y, w, h in people:
        img[y:y + h, x:x + w] = PALETTE[name]
    return img


@pytest.fixture
def tracked(monkeypatch):
    import engine.pose
    from engine import stages

    monkeypatch.setattr(engine.pose, "BlazePose", FakePose)

    def build(**options):
        return stages.build("keypoints", "blazepose_tracked", "cpu", options)

    return build


def run_stage(stage, frames):
    dets = [stage(f) for f in frames]
    return dets, stage.tracking_record()


def test_tracked_stage_selects_the_chosen_person(tracked):
    # red small on the left, blue tall on the right: BlazePose alone (whole frame) sees only the largest
    frames = [scene([("red", 40 + i, 40, 24, 60), ("blue", 300 - i, 20, 30, 90)]) for i in range(8)]
    for person, x_expected in (("largest", 300), ("40,60", 40), ("central", 300)):
        stage = tracked(person=person)
        dets, rec = run_stage(stage, frames)
        assert all(d is not None for d in dets), person
        # the detection is in full-frame coordinates and follows the chosen rectangle
        x_left = dets[-1].image[:, 0].min() * 400
        assert abs(x_left - (x_expected + (7 if x_expected == 40 else -7))) < 3, (person, x_left)
        assert not rec["lost"].any()
        assert np.isfinite(rec["boxes"]).all()
        # boxes are normalised to the frame: centre of the chosen rectangle
        centre = 40 + 7 + 12 if x_expected == 40 else 300 - 7 + 15
        assert abs(rec["boxes"][-1][0] * 400 - centre) < 3, (person, rec["boxes"][-1])


def test_tracked_stage_rejects_another_person_and_takes_the_right_one_back(tracked):
    # the followed red person leaves the frame for frames 6..11; a blue one stands right next to where
    # red was: the crop sees blue, the identity test must reject it (colour), and red is taken back
    frames = []
    for i in range(18):
        people = [("blue", 150, 30, 26, 80)]
        if not 6 <= i < 12:
            people.append(("red", 100, 30, 30, 85))
        frames.append(scene(people))
    stage = tracked(person="100,60")
    dets, rec = run_stage(stage, frames)
    lost = rec["lost"]
    assert tracking.ranges(lost) == [(6, 11)]
    assert any(e["kind"] == "identity_jump" for e in rec["events"])
    for i, d in enumerate(dets):
        if d is not None:   # never blue
            assert d.image[:, 0].min() * 400 < 140, i


def test_tracked_stage_reselects_after_a_cut(tracked):
    a = [scene([("red", 60, 20, 30, 90)]) for _ in range(6)]
    b = [np.full((120, 400, 3), 30, np.uint8) for _ in range(6)]
    for f in b:
        f[10:110, 250:290] = PALETTE["green"]
    stage = tracked()
    dets, rec = run_stage(stage, a + b)
    assert rec["cuts"] == [6]
    assert not rec["lost"].any()
    assert dets[-1].image[:, 0].min() * 400 > 240


def test_low_coverage_is_said():
    valid = np.zeros(20, bool)
    valid[:4] = True
    warnings = []
    segments.prepare(make_track(20, valid), {}, 10.0, lambda c, m: warnings.append(c))
    assert "low_coverage" in warnings
    warnings.clear()
    segments.prepare(make_track(20), {}, 10.0, lambda c, m: warnings.append(c))
    assert warnings == []


def test_floor_lift_keeps_the_body_above_the_floor():
    from engine import skeleton as sk
    from engine.stages.records import Trajectory

    T = 40
    rest = sk.DEFAULT_REST_OFFSETS
    rot = np.repeat(np.eye(3)[None, None], T, 0).repeat(sk.J, 1)        # rest pose (T-pose) every frame
    _, j0 = sk.forward_kinematics(rot[:1], np.zeros((1, 3)), rest)
    stand = -j0[0, :, 2].min()                                         # root height with the lowest joint at 0
    root = np.zeros((T, 3))
    root[:, 2] = stand
    root[15:25, 2] -= 0.2                                              # sinks 20 cm for ten frames

    class M:
        rotations, rest_offsets = rot, rest

    traj = Trajectory(root_world=root, root_orient_world=rot[:, 0], camera_extrinsics=np.repeat(np.eye(4)[None], T, 0),
                      camera_static=True)
    out, lifted = segments.floor_lift(M, traj)
    _, joints = sk.forward_kinematics(rot, out, rest)
    assert joints[..., 2].min() >= -0.05 - 1e-6                        # at most a few cm below the floor
    assert 0.15 < lifted < 0.21
    np.testing.assert_allclose(out[:8], root[:8], atol=2e-3)            # (nearly) untouched away from it
    np.testing.assert_allclose(out[32:], root[32:], atol=2e-3)
    # the lift itself changes by a few cm a frame at most (it does not pass foot noise on as jitter)
    assert np.abs(np.diff(out[:, 2] - root[:, 2])).max() < 0.06


def test_dedupe_merges_a_part_of_the_same_person():
    full = np.array([100.0, 100.0, 40.0, 120.0])
    upper = np.array([100.0, 70.0, 40.0, 60.0])      # a tile saw only the upper half
    other = np.array([300.0, 100.0, 40.0, 120.0])
    assert tracking.dedupe([upper, full, other], [0.9, 0.8, 0.7]) == [0, 2]


def test_tiles_cover_the_frame_and_regions_map_back():
    from engine.stages.keypoints_tracked import cut_region, mask_outside, tiles, to_frame

    W, H = 1280, 360
    ts = tiles(W, H)
    assert ts[0] == (0, 0, W, H)
    cover = np.zeros((H, W), bool)
    for x, y, w, h in ts[1:]:
        assert w == h and 0 <= x and x + w <= W and 0 <= y and y + h <= H
        cover[y:y + h, x:x + w] = True
    assert cover.all()
    # a region reaching outside the frame is padded; a detection in it maps back to frame coordinates
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[100:200, 1200:1260] = 255
    reg = cut_region(rgb, 1150, 50, 200, 200)
    assert reg.shape == (200, 200, 3) and reg[50:150, 50:110].all() and not reg[:, 130:].any()
    det = Detection(image=np.tile(np.array([[0.25, 0.5, 0.1]], np.float32), (33, 1)),
                    world=np.zeros((33, 3), np.float32), visibility=np.ones(33, np.float32))
    full = to_frame(det, 1150, 50, 200, 200, W, H)
    np.testing.assert_allclose(full.image[0], [(1150 + 50) / W, (50 + 100) / H, 0.1 * 200 / W], rtol=1e-6)
    img = np.full((100, 100, 3), 200, np.uint8)
    mask_outside(img, np.array([60.0, 60.0, 20.0, 40.0]), 10, 10, 1.5)   # box (60,60) in frame = (50,50) in crop
    assert (img[50, 50] == 200).all() and (img[5, 5] == 114).all() and (img[50, 90] == 114).all()


def test_cli_person_option_selects_the_tracked_stage():
    from engine import cli

    def opts(*argv):
        return cli.run_options(cli.build_parser().parse_args(["run", "v.mp4", "--out", "r.npz", *argv]))

    assert opts().keypoints.name == "blazepose"
    o = opts("--person", "320,180@4")
    assert o.keypoints.name == "blazepose_tracked" and o.keypoints.options == {"person": "320,180@4"}
    assert opts("--keypoints", "blazepose_tracked").keypoints.options == {}
    with pytest.raises(EngineError) as e:
        opts("--keypoints", "blazepose", "--person", "largest")
    assert e.value.code == "usage"


def test_person_point_is_scaled_to_the_processed_frame():
    assert tracking.scale_person("largest", 0.5, 0.5) == "largest"
    p = tracking.parse_person(tracking.scale_person("880,1000@3", 720 / 1080, 1280 / 1920))
    assert (round(p.x), round(p.y), p.frame) == (587, 667, 3)
