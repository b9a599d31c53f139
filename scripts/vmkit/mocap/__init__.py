"""Motion capture ground truth: BVH and ASF/AMC readers, retargeting onto vm24, dataset listing."""

from .asf_amc import load_asf_amc
from .bvh import load_bvh
from .retarget import SOURCE_MAPS, Motion, retarget
from .source import SourceClip

__all__ = ["SOURCE_MAPS", "Motion", "SourceClip", "load_asf_amc", "load_bvh", "retarget"]
