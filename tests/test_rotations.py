"""engine.geometry.rotations against scipy (the conventions are stated in the names)."""

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from engine.geometry import rotations as rot


def test_quaternion_order_is_wxyz_like_scipy_scalar_first():
    R = Rotation.random(50, random_state=1)
    q = rot.matrix_to_quat_wxyz(torch.as_tensor(R.as_matrix()))
    ref = R.as_quat()[:, [3, 0, 1, 2]]
    ref *= np.sign(ref[:, :1]) * np.sign(q[:, :1].numpy())  # q and -q are the same rotation
    assert np.allclose(q.numpy(), ref, atol=1e-6)
    assert np.allclose(rot.quat_wxyz_to_matrix(q).numpy(), R.as_matrix(), atol=1e-6)


def test_quat_continuity_removes_sign_flips_only():
    R = Rotation.from_rotvec(np.linspace(0, 6, 40)[:, None] * [0.0, 0.0, 1.0])
    q = torch.as_tensor(R.as_quat()[:, [3, 0, 1, 2]])
    flipped = q * torch.as_tensor(np.where(np.arange(40) % 3 == 0, -1.0, 1.0))[:, None]
    c = rot.quat_continuity(flipped)
    assert ((c[1:] * c[:-1]).sum(-1) >= 0).all()
    assert torch.allclose(c.abs(), q.abs())


def test_align_vectors_recovers_a_rotation():
    R = Rotation.random(random_state=2)
    x = np.random.default_rng(0).normal(size=(6, 3))
    Rhat = rot.align_vectors(torch.as_tensor(x), torch.as_tensor(R.apply(x)))
    assert np.allclose(Rhat.numpy(), R.as_matrix(), atol=1e-6)
