"""cryoprior: macromolecular prior knowledge in cryo-EM 3D refinement.

The prior acts through RELION's external-reconstruction hook.

Nothing happens at import: subpackages are imported on demand.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
