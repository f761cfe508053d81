"""tf_defocus: single-image defocus maps (DMENet) and depth-of-field weight maps, TF2 / Keras 3.

Units: blur sigma in pixels (see ``tf_defocus.units``).
"""

__version__ = "0.1.0"
