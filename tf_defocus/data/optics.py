"""Thin-lens optics and the SYNDOF camera sampling policy (KR 10-2363049 step S10; the SYNDOF generator, github.com/codeslake/SYNDOF).

Units: lengths in millimetres (``_mm``), image quantities in pixels (``_px``). Depth is the
object distance ``z`` from the lens along the optical axis [mm].

Circle of confusion (diameter of the blur disc on the sensor, converted to pixels)::

    CoC[px] = (f / N) * |z - S1| / z * f / (S1 - f) * image_width_px / sensor_width_mm

with focal length ``f`` [mm], f-number ``N`` (aperture diameter ``D = f / N`` [mm]) and focus
distance ``S1`` [mm]. This is the patent's ``alpha * |x - S1| / x`` with ``alpha = f1 * D / S1``
and the image distance ``f1 = f * S1 / (S1 - f)``. The Gaussian label is
``sigma = max(0, (CoC - 1) / 4)`` (``tf_defocus.units.coc_to_sigma``).

SYNDOF policy (the authors' MATLAB generator, ``blur_by_depth.m`` in codeslake/SYNDOF, read
for facts only): ``f`` drawn from {50, 70, 85} mm with weights 1:4:4; the scene is shifted so its
nearest depth is at least ``5 f``; the focus distance is one of the scene's depths, drawn with a
Gaussian weight over the depth *rank* centred on the nearest depth (std = half the number of
depths), so focus is biased toward near; the f-number is solved so the largest CoC in the image
equals ``max_coc`` (29 px -> sigma 7 px).
"""

import dataclasses
import math

import numpy as np

from tf_defocus.units import coc_to_sigma

SENSOR_WIDTH_MM = 36.0
"""Full-frame sensor width [mm], as SYNDOF."""

FOCAL_LENGTHS_MM = (50.0, 70.0, 85.0)
FOCAL_LENGTH_WEIGHTS = (1.0, 4.0, 4.0)
MIN_DEPTH_FOCAL_MULTIPLE = 5.0
"""Scene depths are shifted so the nearest is at least this many focal lengths away."""

FOCUS_RANK_STD = 0.5
"""Std of the Gaussian focus-distance weight over depth rank (0 = nearest, 1 = farthest)."""

DEFAULT_MAX_COC_PX = 29.0


@dataclasses.dataclass(frozen=True)
class Camera:
    """A thin-lens camera.

    focal_length_mm: f [mm]. f_number: N (aperture diameter f/N mm); ``inf`` = pinhole (all
    sharp). focus_distance_mm: S1 [mm], object distance in focus, > f. image_width_px: width of
    the image [px] spanning ``sensor_width_mm`` [mm]. depth_shift_mm: added to scene depths
    before the lens formula (SYNDOF's shift to >= 5 f); ``focus_distance_mm`` is measured in
    the shifted frame.
    """
    focal_length_mm: float
    f_number: float
    focus_distance_mm: float
    image_width_px: int
    sensor_width_mm: float = SENSOR_WIDTH_MM
    depth_shift_mm: float = 0.0

    def __post_init__(self):
        if not self.focal_length_mm > 0:
            raise ValueError(f"focal_length_mm must be > 0, got {self.focal_length_mm}")
        if not self.f_number > 0:
            raise ValueError(f"f_number must be > 0, got {self.f_number}")
        if not self.focus_distance_mm > self.focal_length_mm:
            raise ValueError(f"focus_distance_mm ({self.focus_distance_mm}) must exceed the focal "
                             f"length ({self.focal_length_mm})")
        if not self.image_width_px > 0 or not self.sensor_width_mm > 0:
            raise ValueError("image_width_px and sensor_width_mm must be > 0")

    @property
    def aperture_mm(self):
        """Aperture diameter D = f / N [mm] (0 for a pinhole)."""
        return self.focal_length_mm / self.f_number

    @property
    def px_per_mm(self):
        """Sensor sampling [px / mm]."""
        return self.image_width_px / self.sensor_width_mm

    @property
    def coc_scale_px(self):
        """K [px] such that CoC = K * |z - S1| / z (z in the shifted frame)."""
        f, s1 = self.focal_length_mm, self.focus_distance_mm
        return self.aperture_mm * f / (s1 - f) * self.px_per_mm

    def to_dict(self):
        """JSON-safe dict (``f_number`` inf -> None)."""
        d = dataclasses.asdict(self)
        d = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in d.items()}
        d["image_width_px"] = int(self.image_width_px)
        if math.isinf(self.f_number):
            d["f_number"] = None
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of ``to_dict`` (ignores unknown keys)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("f_number") is None:
            kw["f_number"] = math.inf
        return cls(**kw)


def signed_coc_px(depth_mm, camera):
    """Signed CoC [px]: K * (z - S1) / z; > 0 behind the focus plane, < 0 in front.

    depth_mm: array of scene depths [mm] (before the camera's shift). Returns float64.
    """
    z = np.asarray(depth_mm, np.float64) + camera.depth_shift_mm
    if np.any(z <= 0):
        raise ValueError("depth must be > 0 mm after the camera's depth shift")
    return camera.coc_scale_px * (z - camera.focus_distance_mm) / z


def coc_px(depth_mm, camera):
    """Circle-of-confusion diameter [px] for scene depths [mm] (any shape, float64)."""
    return np.abs(signed_coc_px(depth_mm, camera))


def sigma_px_from_depth(depth_mm, camera):
    """Gaussian blur sigma [px] = max(0, (CoC - 1) / 4), float32, same shape as depth."""
    return coc_to_sigma(coc_px(depth_mm, camera)).astype(np.float32)


def sample_focal_length(rng, focal_lengths_mm=FOCAL_LENGTHS_MM, weights=FOCAL_LENGTH_WEIGHTS):
    """Draw f [mm] from ``focal_lengths_mm`` with relative ``weights`` (SYNDOF: 1:4:4)."""
    p = np.asarray(weights, np.float64)
    return float(focal_lengths_mm[rng.choice(len(focal_lengths_mm), p=p / p.sum())])


def depth_shift_mm(min_depth_mm, focal_length_mm):
    """Shift [mm] that moves the nearest depth to ``5 f`` if it is nearer (else 0)."""
    return float(max(0.0, MIN_DEPTH_FOCAL_MULTIPLE * focal_length_mm - float(min_depth_mm)))


FOCUS_LEVELS = 1024
"""Distinct depth levels for the focus draw: inverse depth quantised into this many bins."""


def depth_levels(depth_mm, levels=FOCUS_LEVELS):
    """Distinct depth levels [mm] of a scene, sorted near to far (float64).

    Depths are quantised into ``levels`` uniform bins of inverse depth (uniform in CoC) and each
    occupied bin gives one level, so a continuous slanted surface counts about as much as the
    same depth range of separate objects (SYNDOF took the distinct values of its quantised depth
    maps). The nearest and farthest depths are kept exactly.
    """
    d = np.asarray(depth_mm, np.float64).ravel()
    inv = 1.0 / d
    lo, hi = float(inv.min()), float(inv.max())
    if hi - lo <= 1e-15 * hi:
        return np.array([float(d.min())])
    b = np.minimum(((inv - lo) / (hi - lo) * levels).astype(np.int64), levels - 1)
    occupied = np.flatnonzero(np.bincount(b, minlength=levels))
    z = 1.0 / (lo + (occupied + 0.5) * (hi - lo) / levels)
    z[0], z[-1] = 1.0 / lo, 1.0 / hi  # bin 0 is the farthest, the last bin the nearest
    return np.sort(z)


def sample_focus_distance(depth_mm, rng, rank_std=FOCUS_RANK_STD):
    """Draw S1 [mm] among the scene's distinct depth levels (``depth_levels``), biased to near.

    Weight of the level of rank r (0 = nearest, 1 = farthest) is exp(-r^2 / (2 rank_std^2)),
    SYNDOF's Gaussian over depth ranks: draw r from a half-normal truncated to [0, 1] and take
    the level at that rank.
    """
    z = depth_levels(depth_mm)
    if z.size == 1:
        return float(z[0])
    while True:
        r = abs(rng.normal(0.0, rank_std))
        if r <= 1.0:
            break
    return float(z[int(round(r * (z.size - 1)))])


def solve_f_number(min_depth_mm, max_depth_mm, focal_length_mm, focus_distance_mm,
                   image_width_px, max_coc=DEFAULT_MAX_COC_PX, sensor_width_mm=SENSOR_WIDTH_MM):
    """f-number N that makes the largest CoC over [min, max] depth (shifted frame) = max_coc px.

    CoC is largest at one of the two extremes since |z - S1| / z is monotone on each side of S1.
    Returns ``inf`` when the whole range is at the focus distance (no blur possible).
    """
    f, s1 = float(focal_length_mm), float(focus_distance_mm)
    ratio = max(abs(max_depth_mm - s1) / max_depth_mm, abs(min_depth_mm - s1) / min_depth_mm)
    if ratio <= 0:
        return math.inf
    return float(f * f / (s1 - f) * (image_width_px / sensor_width_mm) * ratio / max_coc)


def sample_camera(depth_mm, rng, image_width_px, max_coc=DEFAULT_MAX_COC_PX,
                  focal_lengths_mm=FOCAL_LENGTHS_MM, focal_weights=FOCAL_LENGTH_WEIGHTS,
                  sensor_width_mm=SENSOR_WIDTH_MM, focus_depth_mm=None):
    """SYNDOF camera for a scene: returns a ``Camera`` whose largest CoC over ``depth_mm`` is
    ``max_coc`` px (unless the scene has a single depth).

    focus_depth_mm: focus on this scene depth [mm] instead of drawing it (SYNDOF's near-biased
    draw); it is shifted with the scene like every depth.
    depth_mm: scene depths [mm], any shape (a depth map or its distinct layer depths); finite
    and > 0. rng: ``numpy.random.Generator``. image_width_px: width of the rendered image [px].
    """
    d = np.asarray(depth_mm, np.float64).ravel()
    if d.size == 0 or not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError("sample_camera: depth must be non-empty, finite and > 0 mm")
    if not max_coc > 1:
        raise ValueError(f"max_coc must be > 1 px, got {max_coc}")
    f = sample_focal_length(rng, focal_lengths_mm, focal_weights)
    shift = depth_shift_mm(d.min(), f)
    z = d + shift
    s1 = sample_focus_distance(z, rng) if focus_depth_mm is None else float(focus_depth_mm) + shift
    n = solve_f_number(z.min(), z.max(), f, s1, image_width_px, max_coc, sensor_width_mm)
    return Camera(focal_length_mm=f, f_number=n, focus_distance_mm=s1,
                  image_width_px=int(image_width_px), sensor_width_mm=float(sensor_width_mm),
                  depth_shift_mm=shift)
