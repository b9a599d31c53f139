"""The body solve: a known pose from landmarks made by the solver's own model (exact definitions), then
retargeted mocap through the data kit's independent observation model, with corrupted limbs."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from engine import skeleton as sk
from engine import solve
from engine.pose import LM, N_LANDMARKS


def _plausible_pose(T: int, seed: int) -> np.ndarray:
    """Local rotations (T, J, 3, 3) of a plausible, smoothly varying pose (hinges bend the right way)."""
    rng = np.random.default_rng(seed)
    rv = np.zeros((T, sk.J, 3))
    phase = np.linspace(0, 2 * np.pi, T)[:, None]
    base = rng.normal(0, 0.25, (sk.J, 3))
    amp = rng.normal(0, 0.25, (sk.J, 3))
    rv[:] = base + amp * np.sin(phase[..., None] + rng.uniform(0, 6, (sk.J, 3)))
    I = sk.INDEX
    for s in ("left", "right"):
        rv[:, I[f"{s}_knee"]] = 0
        rv[:, I[f"{s}_knee"], 0] = 0.2 + 0.8 * (1 + np.sin(phase[:, 0] + rng.uniform(0, 6))) / 2
        rv[:, I[f"{s}_elbow"]] = 0
        sign = -1 if s == "left" else 1
        rv[:, I[f"{s}_elbow"], 2] = sign * (0.3 + 0.9 * (1 + np.sin(phase[:, 0] + rng.uniform(0, 6))) / 2)
        rv[:, I[f"{s}_shoulder"], 1] += sign * -1.0    # arms down from the T-pose
    for j in ("spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "left_hand", "right_hand",
              "left_foot", "right_foot"):
        rv[:, I[j]] *= 0.2
    rv[:, 0] = [0.0, 0.0, 0.4]  # root: turned a little
    return Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix().reshape(T, sk.J, 3, 3)


def _landmarks_from_pose(R: np.ndarray, body: solve.BodyScale, rng) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose-like world landmarks (camera axes) and visibility from the skeleton's target points."""
    T = R.shape[0]
    Rw, P = solve.fk_torch(torch.as_tensor(R, dtype=torch.float32), torch.zeros(T, 3),
                           torch.as_tensor(body.rest_offsets, dtype=torch.float32))
    pts = solve.target_points(Rw, P, torch.as_tensor(body.target_offsets, dtype=torch.float32)).numpy()
    Y = np.full((T, N_LANDMARKS, 3), np.nan)
    vis = np.zeros((T, N_LANDMARKS))
    for k, idx in enumerate(solve._T_LMS):
        Y[:, idx[0]] = pts[:, k] + rng.normal(0, 0.005, (T, 3))  # 5 mm noise
        vis[:, idx[0]] = 0.95
    fill = np.nanmean(Y, axis=1, keepdims=True)
    Y = np.where(np.isnan(Y), fill, Y)
    mid_hip = 0.5 * (Y[:, 23] + Y[:, 24])
    Y = Y - mid_hip[:, None]
    world = np.stack([Y[..., 0], -Y[..., 2], Y[..., 1]], -1)  # body-camera -> BlazePose camera axes
    return world, vis


@pytest.mark.parametrize("seed", [0, 1])
def test_solve_recovers_known_pose(seed):
    rng = np.random.default_rng(seed)
    T = 60
    R_true = _plausible_pose(T, seed)
    # a subject 8 % taller than the template: the solve must measure it
    body_true = solve.measure_body(np.zeros((0, N_LANDMARKS, 3)), np.zeros((0, N_LANDMARKS)))
    body_true.rest_offsets *= 1.08
    body_true.target_offsets *= 1.08
    world, vis = _landmarks_from_pose(R_true, body_true, rng)
    Y = solve.to_body_camera(world)
    body = solve.measure_body(Y, vis)
    assert abs(body.scales["thigh"] - 1.08) < 0.03 and abs(body.scales["upper_arm"] - 1.08) < 0.03

    R, root = solve.solve_body(Y, vis, body, solve.SolveConfig(iterations=60))
    _, P_true = sk.forward_kinematics(R_true, np.zeros((T, 3)), body_true.rest_offsets)
    _, P = sk.forward_kinematics(R.astype(np.float64), root.astype(np.float64), body.rest_offsets)
    P_true -= P_true[:, [1, 2]].mean(1, keepdims=True)  # hip-centred, as the landmarks
    P -= P[:, [1, 2]].mean(1, keepdims=True)
    err = np.linalg.norm(P - P_true, axis=-1)  # (T, J)
    observed = [sk.INDEX[n] for n in sk.JOINT_NAMES if n.split("_", 1)[-1] in
                ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")]
    # stated bound: observed joints within 3 cm on average, every joint within 6 cm
    assert err[:, observed].mean() < 0.03, err[:, observed].mean()
    assert err.mean() < 0.06, err.mean()
    # hinge joints bend the way the true pose bends (no backwards knees)
    for n in ("left_knee", "right_knee"):
        rv = Rotation.from_matrix(R[:, sk.INDEX[n]]).as_rotvec()
        assert (rv[:, 0] > 0).mean() > 0.95
    # the root orientation is recovered within 10 degrees
    dR = Rotation.from_matrix(R[:, 0]).inv() * Rotation.from_matrix(R_true[:, 0])
    assert np.degrees(dR.magnitude()).mean() < 10


def test_initial_pose_is_hinge_consistent():
    """The analytic initialisation alone puts elbows and knees on their hinge axes."""
    rng = np.random.default_rng(3)
    R_true = _plausible_pose(20, 3)
    body = solve.measure_body(np.zeros((0, N_LANDMARKS, 3)), np.zeros((0, N_LANDMARKS)))
    world, vis = _landmarks_from_pose(R_true, body, rng)
    Y = torch.as_tensor(solve.to_body_camera(world), dtype=torch.float32)
    R0, _ = solve.initial_pose(Y, torch.as_tensor(vis, dtype=torch.float32), body)
    for n, axis in (("left_knee", 0), ("left_elbow", 2), ("right_elbow", 2)):
        rv = Rotation.from_matrix(R0[:, sk.INDEX[n]].numpy()).as_rotvec()
        off = np.delete(rv, axis, axis=1)
        assert np.abs(off).max() < 1e-3



def test_low_visibility_points_do_not_turn_joints():
    """Face and hand points 3-5 cm off at visibility 0.05 must barely turn the head and the wrist: the
    other points of those joints carry them. Isolated from landmark-definition differences (the solver's
    own landmark model). Measured: head 4.8 deg clean -> 8.9, wrist 9.3 -> 14.2; with the refinement's
    visibility weight dropped: 15.5 and 27.3."""
    rng = np.random.default_rng(0)
    T = 40
    R_true = _plausible_pose(T, 0)
    body_true = solve.measure_body(np.zeros((0, N_LANDMARKS, 3)), np.zeros((0, N_LANDMARKS)))
    world, vis = _landmarks_from_pose(R_true, body_true, rng)
    Rw_true, _ = sk.forward_kinematics(R_true, np.zeros((T, 3)), body_true.rest_offsets)

    def orientation_errors(world, vis) -> dict[str, float]:
        Y = solve.to_body_camera(world)
        body = solve.measure_body(Y, vis)
        R, root = solve.solve_body(Y, vis, body)
        Rw, _ = sk.forward_kinematics(R.astype(np.float64), root.astype(np.float64), body.rest_offsets)
        return {j: _angle_deg(Rw, Rw_true, j) for j in ("head", "left_wrist")}

    clean = orientation_errors(world, vis)
    bad_world, bad_vis = world.copy(), vis.copy()
    # body-frame shifts (x right, y away, z up) written in BlazePose axes (x, -z, y)
    for names, shift in ((("left_ear", "left_eye", "mouth_left"), (0.03, 0.0, 0.03)),
                         (("left_index", "left_pinky"), (0.0, 0.04, 0.02))):
        idx = [LM[n] for n in names]
        bad_world[:, idx] += np.array([shift[0], -shift[2], shift[1]])
        bad_vis[:, idx] = 0.05
    bad = orientation_errors(bad_world, bad_vis)
    print("orientation errors (deg): clean", clean, "low-visibility points off", bad)
    assert bad["head"] < clean["head"] + 7.0, (bad, clean)
    assert bad["left_wrist"] < clean["left_wrist"] + 9.0, (bad, clean)


# -- on retargeted mocap, through the data kit's synthetic observations ------------------------------
# Landmarks made independently of the solver: a CMU clip (subject 02, punches and strikes: both arms and
# legs move) retargeted to vm24 by scripts.vmkit.mocap, then turned into BlazePose-like observations by
# scripts.vmkit.mocap.synth_landmarks (its own landmark model, a random static camera, 2D noise, a per-clip
# landmark bias, self-occlusion at lower visibility). Measured 2026-12-03 (numbers in the asserts' comments).
from scripts.vmkit.mocap.dataset import DEFAULT_ROOT as MOCAP  # noqa: E402  (../shared/data/mocap or $VIDMOCAP_MOCAP_DIR)

MOCAP_CLIP = Path(MOCAP) / "cmu-mb" / "02" / "02_05.bvh"
LIMBS = {
    "left_arm": ("left_elbow", "left_wrist", "left_hand"),
    "right_arm": ("right_elbow", "right_wrist", "right_hand"),
    "left_leg": ("left_knee", "left_ankle", "left_foot"),
    "right_leg": ("right_knee", "right_ankle", "right_foot"),
    "torso": ("spine1", "spine2", "spine3", "neck", "head", "left_shoulder", "right_shoulder"),
}
# the reference landmark distances measure_body divides by (its docstring's 1.70 m template), restated here
REFERENCE_M = {"thigh": 0.40, "shin": 0.40, "upper_arm": 0.26, "forearm": 0.25, "hip_width": 0.17,
               "shoulder_width": 0.34, "torso": 0.54, "foot": 0.19}
M_BC = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # OpenCV camera -> body-camera axes


@pytest.fixture(scope="module")
def mocap_obs():
    if not MOCAP_CLIP.exists():
        warnings.warn(f"MOCAP DATA MISSING: {MOCAP_CLIP} not found; the solve is NOT tested on independent "
                      "landmarks (only on its own model's)", stacklevel=1)
        pytest.skip(f"SHARED DATA MISSING: {MOCAP_CLIP} (../shared/data/mocap) - solve accuracy on mocap not tested")
    from scripts.vmkit.mocap.bvh import load_bvh
    from scripts.vmkit.mocap.retarget import detect_source_map, retarget
    from scripts.vmkit.mocap import synth_landmarks as sl

    clip = load_bvh(MOCAP_CLIP)
    m = retarget(clip, detect_source_map(clip), fps=30.0).slice(60, 120)     # 2 s of punches
    J, Rw = m.joints_world, m.world_rotations()
    rng = np.random.default_rng(0)
    cam = sl.random_camera(rng, J[:, 0].mean(0), 0.5)
    obs = sl.synthesize(J, Rw, rng, camera=cam, noise_world=0.008, occluder_prob=0.0, dropout=0.0, miss_prob=0.0)
    R, tr = cam.world_to_cam[:3, :3], cam.world_to_cam[:3, 3]
    lm_cam = sl.landmarks_from_joints(J, Rw) @ R.T + tr                      # noise-free landmarks, camera
    hip = 0.5 * (lm_cam[:, LM["left_hip"]] + lm_cam[:, LM["right_hip"]])
    # ground truth in the solve's frame: body-camera axes, origin at the landmarks' hip centre
    joints = ((J @ R.T + tr) - hip[:, None]) @ M_BC.T
    rots = np.einsum("ab,bc,tjcd->tjad", M_BC, R, Rw)
    return {"world": obs["world"].astype(np.float64), "vis": obs["visibility"].astype(np.float64),
            "joints": joints, "rots": rots, "landmarks": lm_cam}


def _solve(world: np.ndarray, vis: np.ndarray):
    Y = solve.to_body_camera(world)
    body = solve.measure_body(Y, vis)
    R, root = solve.solve_body(Y, np.maximum(vis, 0.05), body)
    Rw, P = sk.forward_kinematics(R.astype(np.float64), root.astype(np.float64), body.rest_offsets)
    return body, Rw, P


def _limb_errors(P: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    e = np.linalg.norm(P - gt, axis=-1) * 1000.0
    return {k: float(e[:, [sk.INDEX[n] for n in js]].mean()) for k, js in LIMBS.items()}


def _angle_deg(Rw: np.ndarray, Rgt: np.ndarray, joint: str) -> float:
    j = sk.INDEX[joint]
    return float(np.degrees(Rotation.from_matrix(np.swapaxes(Rw[:, j], -1, -2) @ Rgt[:, j]).magnitude()).mean())


@pytest.fixture(scope="module")
def clean_solve(mocap_obs):
    return _solve(mocap_obs["world"], mocap_obs["vis"])


def test_solve_on_mocap_landmarks(mocap_obs, clean_solve):
    _, _, P = clean_solve
    err = _limb_errors(P, mocap_obs["joints"])
    print("clean limb errors (mm)", err)
    # measured 16-19 mm per limb (the landmark model's joint definitions differ from vm24's: hips 4 cm)
    for limb, e in err.items():
        assert e < 35.0, err


def _landmark_lengths(P: np.ndarray) -> dict[str, float]:
    """The subject's lengths between landmarks (T, 33, 3), as measure_body defines each scale."""
    dist = lambda pairs: float(np.median(np.concatenate([np.linalg.norm(P[:, LM[a]] - P[:, LM[b]], axis=-1)  # noqa: E731
                                                         for a, b in pairs])))
    both = lambda a, b: [(f"left_{a}", f"left_{b}"), (f"right_{a}", f"right_{b}")]  # noqa: E731
    mid = lambda a, b: 0.5 * (P[:, LM[a]] + P[:, LM[b]])  # noqa: E731
    return {
        "thigh": dist(both("hip", "knee")), "shin": dist(both("knee", "ankle")),
        "upper_arm": dist(both("shoulder", "elbow")), "forearm": dist(both("elbow", "wrist")),
        "hip_width": dist([("left_hip", "right_hip")]), "shoulder_width": dist([("left_shoulder", "right_shoulder")]),
        "foot": dist(both("ankle", "foot_index")),
        "torso": float(np.median(np.linalg.norm(mid("left_shoulder", "right_shoulder") - mid("left_hip", "right_hip"), axis=-1))),
    }


def _expected_scales(mocap_obs) -> dict[str, float]:
    L = _landmark_lengths(mocap_obs["landmarks"])
    return {k: float(np.clip(L[k] / ref, 0.7, 1.35)) for k, ref in REFERENCE_M.items()}


def test_measured_bone_scales(mocap_obs, clean_solve):
    """Every scale measure_body reports = the median distance between the noise-free landmarks of the
    subject / the template's reference length (clamped to 0.7-1.35), within 6 %. (This subject's torso,
    0.34 m between the shoulder and hip landmark centres against 0.54 m, sits on the 0.7 clamp.)"""
    body = clean_solve[0]
    measured_m = _landmark_lengths(mocap_obs["landmarks"])
    expected = _expected_scales(mocap_obs)
    print("bone scales", body.scales, "expected", expected)
    assert set(body.scales) == set(REFERENCE_M)
    for k in REFERENCE_M:
        assert body.scales[k] == pytest.approx(expected[k], rel=0.06), (k, body.scales[k], expected[k])
    # the skeleton carries the scales: limb bones as long as the landmarks say
    rest = np.linalg.norm(body.rest_offsets, axis=-1)
    for bone, k in (("left_knee", "thigh"), ("left_ankle", "shin"), ("left_elbow", "upper_arm"), ("left_wrist", "forearm")):
        assert rest[sk.INDEX[bone]] == pytest.approx(measured_m[k], rel=0.06), (bone, rest[sk.INDEX[bone]], measured_m[k])
    assert 1.4 < body.height < 2.0


def test_corrupted_low_visibility_limb(mocap_obs, clean_solve):
    """The left arm's landmarks thrown 30-40 cm off for the whole clip, at visibility 0.05-0.2 (an arm
    hidden behind the body and guessed badly): the other limbs keep their accuracy, the arm stays bounded."""
    rng = np.random.default_rng(1)
    world, vis = mocap_obs["world"].copy(), mocap_obs["vis"].copy()
    arm = [LM[n] for n in ("left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb")]
    T = len(world)
    world[:, arm] += np.array([0.05, -0.3, 0.2]) + rng.normal(0, 0.08, (T, len(arm), 3))
    vis[:, arm] = rng.uniform(0.05, 0.2, (T, len(arm)))
    body, _, P = _solve(world, vis)
    clean = _limb_errors(clean_solve[2], mocap_obs["joints"])
    err = _limb_errors(P, mocap_obs["joints"])
    print("corrupted left arm: limb errors (mm)", err, "clean", clean)
    for limb in ("right_arm", "left_leg", "right_leg", "torso"):
        assert err[limb] < clean[limb] + 10.0, (limb, err[limb], clean[limb])
    # the arm has no other evidence, so it may follow its landmarks (thrown ~370 mm), but no further
    assert err["left_arm"] < 450.0, err
    # the hidden arm's landmarks do not enter the body measurement (the other arm alone measures it:
    # 9 % off here, that arm's landmark bias; the thrown landmarks would give the 1.35 clamp)
    expected = _expected_scales(mocap_obs)
    for k in ("upper_arm", "forearm"):
        assert body.scales[k] == pytest.approx(expected[k], rel=0.12), (k, body.scales, expected)


def test_hidden_arms_are_not_measured(mocap_obs):
    """Both arms hidden (visibility 0.05-0.2) and their landmarks thrown: no arm length can be measured,
    so the arm scales stay the template's (1.0); the legs are still measured as before."""
    rng = np.random.default_rng(2)
    world, vis = mocap_obs["world"].copy(), mocap_obs["vis"].copy()
    T = len(world)
    for side, shift in (("left", (0.05, -0.3, 0.2)), ("right", (-0.1, 0.25, -0.2))):
        for k, n in enumerate(("elbow", "wrist", "pinky", "index", "thumb")):
            i = LM[f"{side}_{n}"]
            world[:, i] += np.array(shift) * (1 + 0.5 * k) + rng.normal(0, 0.05, (T, 3))
            vis[:, i] = rng.uniform(0.05, 0.2, T)
    body = solve.measure_body(solve.to_body_camera(world), vis)
    assert body.scales["upper_arm"] == 1.0 and body.scales["forearm"] == 1.0, body.scales
    expected = _expected_scales(mocap_obs)
    for k in ("thigh", "shin", "hip_width"):
        assert body.scales[k] == pytest.approx(expected[k], rel=0.06), (k, body.scales[k], expected[k])
