"""Video Mocap engine: video in, world-grounded motion file out. Never imports bpy."""

__version__ = "0.1.0"
