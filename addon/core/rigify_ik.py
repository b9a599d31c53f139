"""Rigify legs keyed in IK (numpy only; the bpy half is ``addon/blender/rigify_legs.py``).

After the FK retarget, the generated Rigify rig's IK controls are keyed from the FK pose, so that the
animator gets planted feet on IK controls: ``foot_ik`` (the foot), ``toe_ik`` (the toe's bend),
``thigh_ik_target`` (the knee's pole) per side; ``IK_FK = 0`` and ``pole_vector = 1`` on
``thigh_parent`` switch the leg to IK with the pole (keyed by the bpy side).

Everything is in armature space, 4x4 matrices. Blender composes a pose bone as

    Final = Final_parent · (Rest_parent⁻¹ · Rest) · Basis        so   Basis = (Final_parent · rel)⁻¹ · Final

(``pose_basis``). The parents of Rigify's IK controls are parent-switch bones (Armature constraints
driven by ``IK_parent``/``pole_parent``), so ``Final_parent`` is their *evaluated* pose, read per frame
with the FK keys in place (it does not depend on the leg). In IK mode ``ORG-foot`` copies
``MCH-thigh_ik_target`` (below ``foot_ik`` through the heel-roll bones, rigid while those are not
posed); the evaluated pair gives the offset ``C = foot_ik⁻¹ · MCH-thigh_ik_target`` per frame, so the
foot control that puts the IK foot on a wanted foot matrix ``F`` is ``foot_ik = F · C⁻¹``.

The wanted foot is the FK foot, then held in the rig's own space where the result marks contact
(``plant``, after ``core.footlock``'s rules but translating the foot only: a run of ankle contact holds
the ankle at the run's mean; ball only (heel up) holds the ball, the foot's FK rotation kept, where the
planted foot left it at heel-off (the run's mean when the heel was never down); lock-in and release
fade over ``footlock.BLEND_FRAMES``; ``strength`` s moves the foot s of the way, 0 = the FK feet exactly). The
retargeted FK legs cannot hold the feet exactly on a rig with other leg proportions than the result's;
the IK legs do (Rigify's IK stretch reaches what the leg cannot). The pole sits in the plane of hip,
FK knee and wanted ankle, on the knee's side, at the rig's rest distance of the pole from the knee;
for an almost straight leg (knee within 1e-3 leg lengths of the hip-ankle line) the plane comes from
the FK thigh's rotation of the rest pole direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import rig
from .footlock import BLEND_FRAMES, _fade, _run_targets, _runs
from .retarget import matrix_to_quat

FloatArray = npt.NDArray[np.float64]
# Rigify side suffix -> the result's side prefix
SIDES = (("L", "left"), ("R", "right"))
STRAIGHT = 1e-3     # knee offset from the hip-ankle line, in leg lengths, below which the leg counts as straight


def leg_names(side: str) -> dict[str, str]:
    """The generated rig's bones of one leg (``side``: "L" or "R")."""
    return {"parent": f"thigh_parent.{side}",                  # holds IK_FK, pole_vector, IK_parent, ...
            "thigh_fk": f"thigh_fk.{side}", "shin_fk": f"shin_fk.{side}", "foot_fk": f"foot_fk.{side}",
            "toe_fk": f"toe_fk.{side}",
            "foot_ik": f"foot_ik.{side}", "ik_foot": f"MCH-thigh_ik_target.{side}",   # what ORG-foot copies in IK
            "toe_ik": f"toe_ik.{side}", "pole": f"thigh_ik_target.{side}"}


REQUIRED = ("parent", "thigh_fk", "shin_fk", "foot_fk", "foot_ik", "ik_foot", "pole")


@dataclass(frozen=True)
class LegPose:
    """One leg, evaluated with the FK keys (T frames, armature space, 4x4) plus rest data."""

    thigh: FloatArray            # (T, 4, 4) FK thigh (its head: the hip)
    knee: FloatArray             # (T, 3) FK shin head
    foot: FloatArray             # (T, 4, 4) FK foot (= ORG-foot in FK)
    toe: FloatArray | None       # (T, 4, 4) FK toe, or None without toe controls
    foot_ik: FloatArray          # (T, 4, 4) foot_ik as evaluated (any pose; only C below matters)
    ik_foot: FloatArray          # (T, 4, 4) MCH-thigh_ik_target as evaluated
    foot_ik_parent: FloatArray   # (T, 4, 4) foot_ik's parent (parent-switch bone) evaluated
    toe_ik_parent: FloatArray | None   # (T, 4, 4) toe_ik's parent evaluated (rigid below foot_ik)
    pole_parent: FloatArray      # (T, 4, 4) thigh_ik_target's parent evaluated
    foot_ik_rel: FloatArray      # (4, 4) Rest_parent⁻¹ · Rest of foot_ik
    toe_ik_rel: FloatArray | None
    pole_rel: FloatArray         # (4, 4) of thigh_ik_target
    thigh_rest: FloatArray       # (4, 4)
    knee_rest: FloatArray        # (3,)
    pole_rest: FloatArray        # (3,) thigh_ik_target's rest head


@dataclass(frozen=True)
class LegKeys:
    foot_ik_location: FloatArray       # (T, 3) pose-bone channels
    foot_ik_quaternion: FloatArray     # (T, 4) wxyz, continuous
    toe_ik_quaternion: FloatArray | None
    pole_location: FloatArray          # (T, 3)
    foot: FloatArray                   # (T, 4, 4) the foot the IK leg is given (armature space)


def pose_basis(parent_final: FloatArray, rel: FloatArray, final: FloatArray) -> FloatArray:
    """``Basis = (Final_parent · rel)⁻¹ · Final`` ((T, 4, 4) each; ``rel`` (4, 4))."""
    out: FloatArray = np.linalg.inv(parent_final @ rel[None]) @ final
    return out


def _quat(m: FloatArray) -> FloatArray:
    """(T, 4, 4) -> (T, 4) continuous wxyz of the rotation part (scale removed by the polar factor)."""
    u, _, vt = np.linalg.svd(m[:, :3, :3])
    r = u @ vt
    out: FloatArray = rig.make_continuous(matrix_to_quat(r)[:, None])[:, 0]
    return out


def plant(foot: FloatArray, ball: FloatArray | None, ankle_contact: npt.NDArray[np.bool_],
          ball_contact: npt.NDArray[np.bool_], strength: float, blend_frames: int = BLEND_FRAMES) -> FloatArray:
    """The FK foot matrices (T, 4, 4) translated so that contact-frame feet stay put (module docstring)."""
    s = float(np.clip(strength, 0.0, 1.0))
    ankle = foot[:, :3, 3]
    if ball is None:
        ball_contact = np.zeros_like(ankle_contact)
        ball = ankle
    if s == 0.0 or not (ankle_contact.any() or ball_contact.any()):
        return foot.copy()
    ta = _run_targets(ankle, ankle_contact)
    up = ball_contact & ~ankle_contact                  # heel up: the ball holds
    tf = np.full_like(ankle, np.nan)
    for s0, e0 in _runs(ball_contact):
        heel_up = s0 + np.flatnonzero(up[s0:e0])
        if not len(heel_up):
            continue
        before = s0 + np.flatnonzero(ankle_contact[s0:heel_up[0]])
        if len(before):   # heel-off: the ball stays where the planted foot put it (no jump)
            k = before[-1]
            tf[heel_up] = ta[k] + ball[k] - ankle[k]
        else:
            tf[heel_up] = ball[heel_up].mean(axis=0)
    goal = np.where(ankle_contact[:, None], ta, np.where(up[:, None], tf - (ball - ankle), ankle))
    disp = _fade(goal, ankle, ankle_contact | ball_contact, blend_frames)
    out = foot.copy()
    out[:, :3, 3] += s * disp
    return out


def pole_points(hip: FloatArray, knee: FloatArray, ankle: FloatArray, fallback: FloatArray,
                distance: float) -> FloatArray:
    """(T, 3) pole positions: ``distance`` from the knee, across the hip-ankle line on the knee's side
    (``fallback`` (T, 3): the direction for an almost straight leg)."""
    u = ankle - hip
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    n = (knee - hip) - np.einsum("ti,ti->t", knee - hip, u)[:, None] * u
    f = fallback - np.einsum("ti,ti->t", fallback, u)[:, None] * u
    leg = np.linalg.norm(knee - hip, axis=1) + np.linalg.norm(ankle - knee, axis=1)
    straight = np.linalg.norm(n, axis=1) < STRAIGHT * leg
    n = np.where(straight[:, None], f, n)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    out: FloatArray = knee + distance * n
    return out


def solve_leg(p: LegPose, ankle_contact: npt.NDArray[np.bool_] | None = None,
              ball_contact: npt.NDArray[np.bool_] | None = None, strength: float = 0.0) -> LegKeys:
    """Pose channels of ``foot_ik``, ``toe_ik`` and ``thigh_ik_target`` that put the IK leg on the FK
    leg, its feet planted by ``strength`` on the contact frames (module docstring)."""
    T = len(p.foot)
    no = np.zeros(T, dtype=bool)
    ball = None if p.toe is None else p.toe[:, :3, 3]
    foot = plant(p.foot, ball, no if ankle_contact is None else ankle_contact,
                 no if ball_contact is None else ball_contact, strength)
    C = np.linalg.inv(p.foot_ik) @ p.ik_foot                               # foot_ik -> IK foot (rigid)
    foot_ik = foot @ np.linalg.inv(C)                                      # Final of foot_ik
    basis = pose_basis(p.foot_ik_parent, p.foot_ik_rel, foot_ik)
    toe_q = None
    if p.toe is not None and p.toe_ik_parent is not None and p.toe_ik_rel is not None:
        toe = foot @ np.linalg.inv(p.foot) @ p.toe                         # the FK toe, carried with the foot
        parent = foot_ik @ np.linalg.inv(p.foot_ik) @ p.toe_ik_parent       # rigid below foot_ik
        toe_q = _quat(pose_basis(parent, p.toe_ik_rel, toe))
    # the pole: FK hip and knee, the wanted ankle; for a straight leg the rest pole direction turned by the thigh
    rest_dir = p.pole_rest - p.knee_rest
    turn = p.thigh[:, :3, :3] @ p.thigh_rest[:3, :3].T
    pole = pole_points(p.thigh[:, :3, 3], p.knee, foot[:, :3, 3], turn @ rest_dir, float(np.linalg.norm(rest_dir)))
    M = p.pole_parent @ p.pole_rel[None]                                   # Final = M · Translation(l)
    loc = np.einsum("tab,tb->ta", np.linalg.inv(M), np.concatenate([pole, np.ones((T, 1))], axis=1))[:, :3]
    return LegKeys(foot_ik_location=basis[:, :3, 3], foot_ik_quaternion=_quat(basis), toe_ik_quaternion=toe_q,
                   pole_location=loc, foot=foot)
