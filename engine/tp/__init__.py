"""TP: the learned trajectory prior (RopeTP section 3.3).

A small transformer denoiser regenerates the root trajectory (planar velocity in the body's heading
frame, root height, foot contacts) from the root-relative, heading-canonical joint positions of a
window of frames; it is sampled with DDIM and, where the camera gives usable evidence of the root's
motion, guided toward it.

- :mod:`engine.tp.representation`: the one definition of heading, conditions and targets (training
  and engine use the same functions).
- :mod:`engine.tp.diffusion`: the noise schedule and the DDIM sampler (network-agnostic), windowed
  over long clips with overlaps blended at every step.
- :mod:`engine.tp.model`: the denoiser network, its frozen config and strict weight loading.
"""
