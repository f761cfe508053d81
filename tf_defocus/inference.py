"""Run a saved defocus model on photos of any size: ``load_estimator(path).predict(image)``.

``load_estimator`` opens a ``.keras`` file, SavedModel directory or ``.tflite`` file
(``tf_defocus.backends``, which says what each format holds) and wraps it in an ``Estimator``
that runs it on overlapping tiles (``tf_defocus.tiling``: any image size, memory bounded by the
tile size, default tile size and overlap and why) and turns the native map into sigma [px] or
a focus weight (``tf_defocus.model_kinds``). ``DoFWeightMethod`` puts the training-free DoF
weight map behind the same interface; ``RunSettings`` are the tile and thread settings of the
predict and evaluate CLIs.
"""

import dataclasses
import os

import cv2
import numpy as np

from tf_defocus import artifacts, model_kinds
from tf_defocus.backends import (DEFAULT_TFLITE_THREADS, Backend, ModelLoadError, open_backend,
                                 set_tf_threads)
from tf_defocus.config import Section, setting
from tf_defocus.imageio import to_rgb_float
from tf_defocus.tiling import (DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE, TILE_MULTIPLE,
                               balanced_tile, check_tiling, run_tiled, tile_grid, tile_starts)
from tf_defocus.units import SIGMA_MAX_PX

__all__ = [
    "DEFAULT_MAX_SIDE", "DoFWeightMethod", "Estimator", "FLIP_CHOICES", "RunSettings",
    "default_model_path", "flip_averaged", "load_estimator", "reading_scale",
    "scaled_size",
    # Re-exported from tf_defocus.backends and tf_defocus.tiling (importable from here):
    "DEFAULT_TFLITE_THREADS", "ModelLoadError", "set_tf_threads",
    "DEFAULT_TILE_OVERLAP", "DEFAULT_TILE_SIZE", "TILE_MULTIPLE", "balanced_tile",
    "check_tiling", "tile_starts",
]


FLIP_CHOICES = (1, 2, 4)
# Photos whose long side exceeds this many px are read downscaled to it (``reading_scale``): blur
# in px grows with the resolution and leaves the model's 7 px range in large photos (README,
# "--scale"). 1280 px keeps validation set v2 (640 px) and its x2 version (1280 px) at scale 1.
DEFAULT_MAX_SIDE = 1280
# The views of flip averaging: (flip rows, flip columns) for 1, 2 or 4 views.
_FLIP_VIEWS = ((False, False), (False, True), (True, False), (True, True))


def check_scale(scale):
    """ValueError unless 0 < ``scale`` <= 1 (the reading scale of ``Estimator``)."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")


def check_max_side(max_side):
    """ValueError unless ``max_side`` is a whole number of px >= 0 (0 = no cap)."""
    if isinstance(max_side, bool) or int(max_side) != max_side or max_side < 0:
        raise ValueError(f"max_side must be a whole number of px >= 0, got {max_side!r}")


def reading_scale(height, width, scale=1.0, max_side=DEFAULT_MAX_SIDE):
    """The scale (0, 1] at which a (height, width) photo is read: ``scale``, or
    ``max_side`` / (the long side) if that is smaller (``max_side`` 0 = no cap). A model's
    sigma range in the photo's px is 7 / (this scale)."""
    long_side = max(height, width)
    if max_side and long_side > max_side:
        return min(scale, max_side / long_side)
    return scale


def scaled_size(height, width, scale):
    """(height, width) [px] of a photo resized by ``scale``, each at least 1 px."""
    return max(1, round(height * scale)), max(1, round(width * scale))


class ReadingScale:
    """``reading_scale`` / ``sigma_max_px`` of an object with ``scale`` and ``max_side``
    (``RunSettings``, ``Estimator``)."""

    def reading_scale(self, height, width):
        """Scale at which a (height, width) photo is read (the function ``reading_scale``)."""
        return reading_scale(height, width, self.scale, self.max_side)

    def sigma_max_px(self, height, width):
        """Top of a model's sigma range [px] in a (height, width) photo: 7 / its reading scale."""
        return SIGMA_MAX_PX / self.reading_scale(height, width)


def check_flips(flips):
    """ValueError unless ``flips`` is one of ``FLIP_CHOICES``."""
    if flips not in FLIP_CHOICES:
        raise ValueError(f"flips must be one of {FLIP_CHOICES}, got {flips!r}")


def flip_averaged(run, flips):
    """``run`` (float32 (N, h, w, 3) -> (N, h, w) map) averaged over ``flips`` mirrored views
    of its input (1: ``run`` itself; 2: + left-right; 4: + upside down and both), each view's
    map mirrored back. The network is not mirror-invariant, so its errors partly average out:
    a cheap ensemble that costs ``flips`` forward passes."""
    check_flips(flips)
    if flips == 1:
        return run

    def averaged(batch):
        total = None
        for rows, cols in _FLIP_VIEWS[:flips]:
            view = np.s_[:, ::-1 if rows else 1, ::-1 if cols else 1]
            out = np.asarray(run(np.ascontiguousarray(batch[view])), np.float32)[view]
            total = out if total is None else total + out
        return total / np.float32(flips)
    return averaged


@dataclasses.dataclass(frozen=True)
class RunSettings(ReadingScale, Section):
    """How ``load_estimator`` runs a model, as config settings (predict and evaluate derive
    from it): tiles [px] and CPU threads."""
    tile_size: int | None = setting(
        None, f"Tile side [px], multiple of {TILE_MULTIPLE}; 0 = whole image in one pass "
        "(memory grows with the image). Default: the model's suggestion (its ModelInfo "
        f"tile_size: 1280 for the built-in default model), else {DEFAULT_TILE_SIZE}.")
    tile_overlap: int = setting(DEFAULT_TILE_OVERLAP, "Overlap of neighbouring tiles [px], "
                                f"multiple of {TILE_MULTIPLE}, at most tile_size / 2.")
    threads: int = setting(0, "CPU threads for TF / TFLite (0 = default; TFLite: "
                              f"{DEFAULT_TFLITE_THREADS}).", low=0)
    flips: int = setting(1, "Test-time flip averaging of a model's map: 1 = off, 2 = the mean "
                            "over the photo and its mirror image, 4 = also upside down and both "
                            "(2x / 4x the time; models only, docs/MODEL_CARD.md gives the "
                            "gain).", choices=FLIP_CHOICES)
    scale: float = setting(1.0, "Read the photo at this scale, 0 < scale <= 1, and give sigma in "
                                "the photo's px (the reading resized back and divided by the "
                                "scale): the range grows from 7 px to 7/scale px, for large "
                                "photos whose blur exceeds 7 px; models only "
                                "(docs/MODEL_CARD.md gives the trade).", above=0.0, high=1.0)
    max_side: int = setting(DEFAULT_MAX_SIDE, "Read photos whose long side exceeds this many px "
                                              "downscaled to it (scale max_side / long side, if "
                                              "below --scale), which brings their blur towards "
                                              "the model's 7 px range; 0 = never; models only.",
                            low=0)

    def check(self):
        try:
            check_tiling(self.tile_size or 0, self.tile_overlap)
        except ValueError as e:
            raise ValueError(f"--{e}") from None


def _as_rgb_float(image):
    """Model input (H, W, 3) float32 in [0, 1]; a float32 RGB array already in range is used
    as is (no copy: a 24 MP photo is 288 MB), anything else goes through ``to_rgb_float``."""
    a = np.asarray(image)
    if a.dtype == np.float32 and a.ndim == 3 and a.shape[-1] == 3 and min(a.shape[:2]) > 0:
        lo, hi = float(a.min()), float(a.max())   # NaN propagates into min/max
        if np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0:
            return a
    return to_rgb_float(a, "image")


@dataclasses.dataclass
class Estimator(ReadingScale):
    """A loaded model plus tiling settings.

    ``kind`` is ``defocus`` (maps in sigma px) or ``dof_weight`` (focus weight, no blur unit).
    ``tile_size`` 0 = whole image in one pass, None = the model's suggestion (its ModelInfo
    ``tile_size``) or ``DEFAULT_TILE_SIZE``; ``fixed_size`` (h, w) for fixed-input models (then
    tiles are that size regardless of ``tile_size``). ``flips``: test-time flip averaging of
    every tile (``flip_averaged``: 1, 2 or 4 views). ``scale`` (0, 1] and ``max_side`` [px]: the
    model reads the photo resized by its ``reading_scale`` (area interpolation: ``scale``, lower
    for a photo whose long side exceeds ``max_side``), and its map is resized back (bilinear),
    so a defocus model's range is ``sigma_max_px(h, w)`` = 7 / (that scale) px of the photo.
    """
    backend: Backend
    path: str = ""
    tile_size: int | None = None
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    flips: int = 1
    scale: float = 1.0
    max_side: int = DEFAULT_MAX_SIDE

    def __post_init__(self):
        if self.tile_size is None:
            self.tile_size = getattr(self.backend.info, "tile_size", None) or DEFAULT_TILE_SIZE
        check_tiling(self.tile_size, self.tile_overlap)
        check_scale(self.scale)
        check_max_side(self.max_side)
        self._run = flip_averaged(self.backend, self.flips)

    @property
    def kind(self):
        return self.backend.kind

    @property
    def fixed_size(self):
        return self.backend.fixed_size

    @property
    def info(self):
        return self.backend.info

    def tiles(self, height, width):
        """The tile grid for an (height, width) image: ((tile_h, tile_w), starts_y, starts_x,
        (padded_h, padded_w)) (``tiling.tile_grid``)."""
        return tile_grid(height, width, tile_size=self.tile_size, tile_overlap=self.tile_overlap,
                         size_multiple=self.backend.size_multiple, fixed_size=self.fixed_size)

    def predict_native(self, image, progress=None):
        """Map in the model's native units, float32 (H, W) of the input: sigma /
        ``sigma_max_px(H, W)`` (defocus; sigma/7 at scale 1) or focus weight.

        image: (H,W,3) RGB / (H,W) gray / (H,W,4) RGBA, uint8, uint16 or float in [0,1].
        progress: optional callable(done_tiles, total_tiles).
        """
        img = _as_rgb_float(image)
        h, w = img.shape[:2]
        scale = self.reading_scale(h, w)
        if scale == 1.0:
            return run_tiled(self._run, img, self.tiles(h, w), progress)
        sh, sw = scaled_size(h, w, scale)
        small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
        native = run_tiled(self._run, small, self.tiles(*small.shape[:2]), progress)
        return cv2.resize(native, (w, h), interpolation=cv2.INTER_LINEAR)

    def predict(self, image, progress=None):
        """Defocus map: float32 sigma [px] of the photo, in [0, ``sigma_max_px(H, W)``], shape
        (H, W) of the input (see ``predict_native``)."""
        spec = model_kinds.spec(self.kind)
        if not spec.has_sigma:
            raise ValueError(f"{self.path or 'model'}: a {self.kind} model outputs a focus weight "
                             f"with no blur unit; use predict_focus()")
        native = self.predict_native(image, progress)
        return spec.sigma_px(np.clip(native, 0.0, 1.0), self.sigma_max_px(*native.shape))

    def predict_focus(self, image, progress=None):
        """Focus map in [0, 1] (1 = in focus), float32 (H, W): 1 - sigma / ``sigma_max_px(H, W)``
        for a defocus model, the weight map for a dof_weight model."""
        native = np.clip(self.predict_native(image, progress), 0.0, 1.0)
        return model_kinds.spec(self.kind).focus(native)


class DoFWeightMethod:
    """The training-free DoF weight map (``tf_defocus.dof.dof_weight_map``) behind the
    Estimator interface; kind ``dof_weight`` (no blur unit, so ``predict`` refuses)."""
    kind = artifacts.KIND_DOF_WEIGHT
    path = "dof_weight"
    info = None
    fixed_size = None
    tile_size = 0
    tile_overlap = 0

    def __init__(self, mask_size=15):
        self._fn = _dof_weight_fn()
        from tf_defocus.dof import check_mask_size
        self.mask_size = check_mask_size(mask_size)

    def predict(self, image, progress=None):
        raise ValueError("the dof_weight method gives a focus weight with no blur unit; there is "
                         "no sigma map (use predict_focus)")

    def predict_native(self, image, progress=None):
        out = np.asarray(self._fn(image, mask_size=self.mask_size), np.float32)
        if progress:
            progress(1, 1)
        return out

    def predict_focus(self, image, progress=None):
        return np.clip(self.predict_native(image, progress), 0.0, 1.0)


def _dof_weight_fn():
    try:
        from tf_defocus.dof import dof_weight_map
    except ImportError as e:
        raise NotImplementedError("the dof_weight method needs tf_defocus.dof.dof_weight_map, "
                                  f"which is not available: {e}") from e
    return dof_weight_map


def default_model_path():
    """Path of the built-in default model (``tf_defocus/weights/default_model.keras``);
    ModelLoadError if this installation lacks it."""
    from tf_defocus.weights import DEFAULT_MODEL
    if not DEFAULT_MODEL.is_file():
        raise ModelLoadError(f"{DEFAULT_MODEL}: the built-in default model is missing from this "
                             f"installation; pass a model path (--model=PATH) or use a "
                             f"training-free method (--method=hifst or --method=lbp)")
    return DEFAULT_MODEL


def load_estimator(path=None, tile_size=None, tile_overlap=DEFAULT_TILE_OVERLAP, threads=None,
                   flips=1, scale=1.0, max_side=DEFAULT_MAX_SIDE):
    """Load a ``.keras`` file, SavedModel directory or ``.tflite`` file as an ``Estimator``;
    ``path=None`` loads the built-in default model (``default_model_path()``).

    tile_size, tile_overlap: px, multiples of 16 (tile_size 0 = whole image in one pass, None =
    the model's suggested tile, ``tiling.tile_size_for_width``: 1280 px for the default model,
    else ``DEFAULT_TILE_SIZE``).
    threads: threads of a ``.tflite`` model's LiteRT interpreter (default 2). TensorFlow's
    process-wide thread pools (``.keras`` / SavedModel) are not touched: set them with
    ``set_tf_threads`` first.
    flips: test-time flip averaging, 1 (off), 2 or 4 views (``flip_averaged``).
    scale: reading scale in (0, 1] (``Estimator``): sigma up to 7 / scale px of the photo.
    max_side: photos whose long side exceeds it [px] are read at max_side / (the long side) if
    that is below ``scale`` (0 = never; ``reading_scale``).
    Raises ModelLoadError (naming the path) for anything that is not a tf_defocus model, and
    ValueError for bad tiling parameters, before any inference work.
    """
    check_tiling(tile_size or 0, tile_overlap)
    check_flips(flips)      # before loading the model
    check_scale(scale)
    check_max_side(max_side)
    if path is None:
        path = default_model_path()
    return Estimator(backend=open_backend(path, threads), path=os.fspath(path), tile_size=tile_size,
                     tile_overlap=tile_overlap, flips=flips, scale=scale,
                     max_side=max_side)
