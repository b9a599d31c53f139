"""Video Mocap extension root: Blender loads this package; the add-on lives in ``addon/``."""

# Blender imports this folder as a package. Test runners may import the file on its own (pytest does, for
# a package-level setup, when the checkout's folder name is not an identifier, e.g. a "wt-1" worktree):
# there is nothing to register then.
if __package__:
    from .addon import register, unregister

    __all__ = ["register", "unregister"]
