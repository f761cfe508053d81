"""User RGB-D sources: all-in-focus images with depth, read into (sRGB float image, depth [mm]).

Formats (``--rgbd_format``) and layouts under a root folder:

* ``middlebury`` -- Middlebury 2014 stereo: one folder per scene holding ``im0.png``,
  ``disp0.pfm`` (left disparity [px], ``inf`` = unknown) and ``calib.txt``. Depth [mm] =
  ``baseline * f / (disp + doffs)`` with ``f = cam0[0][0]`` [px] and ``baseline`` [mm].
* ``sintel`` -- MPI Sintel: ``.dpt`` depth files (float32 tag 202021.25, int32 width, int32
  height, float32 row-major depth). Layout ``clean|final|image/<scene>/<frame>.png`` beside
  ``depth/<scene>/<frame>.dpt``. Depth units x ``depth_scale`` (default 1000: metres -> mm).
* ``synthia`` -- SYNTHIA: 16-bit PNG depth in centimetres (first channel if RGB), 65535 = sky,
  which is treated as far (set to the largest finite depth). Layout ``RGB|image/<...>.png``
  beside ``Depth|depth/<...>.png``. ``depth_scale`` default 10 (cm -> mm).
* ``generic`` -- ``image/<name>.png|.jpg`` beside ``depth/<name>.png`` (8/16-bit integer) or
  ``depth/<name>.npy`` (float); depth [mm] = value x ``depth_scale`` (mm per unit, default 1).

Bad input raises ``DataError`` naming the file: missing partner file, unreadable / corrupt /
truncated image or depth, image and depth of different sizes, depth with NaN / Inf / zero /
negative values over more than ``max_invalid_fraction`` of the pixels (fewer are filled from the
nearest valid pixel), or no valid depth at all.
"""

import dataclasses
import math
import re
from pathlib import Path

import cv2
import numpy as np

from tf_defocus import imageio
from tf_defocus.data.errors import DataError

FORMATS = ("middlebury", "sintel", "synthia", "generic")
DEFAULT_DEPTH_SCALE = {"middlebury": 1.0, "sintel": 1000.0, "synthia": 10.0, "generic": 1.0}
"""mm per stored depth unit when ``depth_scale`` is not given."""

DEFAULT_MAX_INVALID_FRACTION = 0.25
"""Middlebury ground truth leaves occluded pixels unknown (a few % up to ~20%)."""

SYNTHIA_SKY = 65535
SINTEL_TAG = 202021.25
_IMAGE_DIRS = ("image", "images", "rgb", "clean", "final")
_DEPTH_DIRS = ("depth",)
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")


@dataclasses.dataclass(frozen=True)
class RGBDPair:
    """One source. name: stable id (relative path, '/' -> '_'). image_path / depth_path: files
    (may not exist: reported when loaded). calib_path: Middlebury ``calib.txt``."""
    name: str
    image_path: Path
    depth_path: Path
    format: str
    calib_path: Path | None = None


# ----------------------------------------------------------------------------- file readers
def read_pfm(path):
    """Read a PFM file -> float32 (H, W) or (H, W, 3), top row first. Raises DataError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            kind = f.readline().strip()
            if kind not in (b"Pf", b"PF"):
                raise DataError(f"{path}: not a PFM file (header {kind[:8]!r})")
            dims = f.readline().split()
            while dims and dims[0].startswith(b"#"):
                dims = f.readline().split()
            w, h = int(dims[0]), int(dims[1])
            scale = float(f.readline().strip())
            data = f.read()
    except (OSError, ValueError, IndexError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: unreadable PFM file ({e})") from e
    ch = 3 if kind == b"PF" else 1
    n = w * h * ch
    if w <= 0 or h <= 0 or len(data) < 4 * n:
        raise DataError(f"{path}: truncated PFM file (expected {w}x{h}x{ch} floats, "
                        f"got {len(data) // 4})")
    arr = np.frombuffer(data[:4 * n], dtype="<f4" if scale < 0 else ">f4").astype(np.float32)
    arr = arr.reshape(h, w, ch) if ch == 3 else arr.reshape(h, w)
    return np.ascontiguousarray(arr[::-1])  # PFM stores the bottom row first


def read_dpt(path):
    """Read an MPI Sintel ``.dpt`` depth file -> float32 (H, W). Raises DataError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: unreadable depth file ({e})") from e
    if len(data) < 12:
        raise DataError(f"{path}: truncated .dpt file ({len(data)} bytes)")
    tag = float(np.frombuffer(data[:4], "<f4")[0])
    w, h = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    if tag != SINTEL_TAG:
        raise DataError(f"{path}: not a Sintel .dpt file (tag {tag}, expected {SINTEL_TAG})")
    if not (0 < w < 100_000 and 0 < h < 100_000):
        raise DataError(f"{path}: implausible .dpt size {w}x{h}")
    if len(data) < 12 + 4 * w * h:
        raise DataError(f"{path}: truncated .dpt file (expected {w}x{h} floats)")
    return np.frombuffer(data[12:12 + 4 * w * h], "<f4").reshape(h, w).astype(np.float32)


def read_middlebury_calib(path):
    """Parse Middlebury ``calib.txt`` -> dict with ``f`` [px], ``baseline`` [mm], ``doffs`` [px]."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable calibration file ({e})") from e
    vals = dict(re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", text, flags=re.M))
    try:
        cam0 = [float(v) for v in re.findall(r"[-+0-9.eE]+", vals["cam0"])]
        out = {"f": cam0[0], "baseline": float(vals["baseline"]), "doffs": float(vals["doffs"])}
    except (KeyError, IndexError, ValueError) as e:
        raise DataError(f"{path}: calibration needs cam0, baseline and doffs ({e})") from e
    if not (out["f"] > 0 and out["baseline"] > 0 and math.isfinite(out["doffs"])):
        raise DataError(f"{path}: invalid calibration values {out}")
    return out


def _read_depth_png(path):
    """16-bit (or 8-bit) depth PNG -> (H, W) float32 raw values; first channel if RGB."""
    try:
        a = imageio.read_raw_image(path, cv2.IMREAD_UNCHANGED)
    except imageio.ImageReadError as e:
        raise DataError(f"depth image {e}") from e
    if a.ndim == 3:
        a = a[..., 2] if a.shape[-1] >= 3 else a[..., 0]  # OpenCV is BGR: index 2 = R (first)
    return a


def _read_npy(path):
    try:
        a = np.load(str(path), allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: unreadable .npy depth ({e})") from e
    a = np.squeeze(np.asarray(a))
    if a.ndim != 2 or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise DataError(f"{path}: .npy depth must be a 2-D numeric array, got {a.shape} {a.dtype}")
    return a.astype(np.float32)


# ----------------------------------------------------------------------------- depth cleaning
def clean_depth(depth_mm, name, max_invalid_fraction=DEFAULT_MAX_INVALID_FRACTION):
    """Validate a depth map [mm]; fill a few invalid (NaN / Inf / <= 0) pixels from the nearest
    valid pixel. Raises DataError (naming ``name``) when too many or all are invalid."""
    d = np.asarray(depth_mm, np.float32)
    valid = np.isfinite(d) & (d > 0)
    n_bad = int(d.size - np.count_nonzero(valid))
    if n_bad == 0:
        return d
    if n_bad == d.size:
        raise DataError(f"{name}: no valid depth (all pixels are NaN, Inf, zero or negative)")
    frac = n_bad / d.size
    if frac > max_invalid_fraction:
        raise DataError(f"{name}: {100 * frac:.1f}% of depth pixels are NaN, Inf, zero or "
                        f"negative (limit {100 * max_invalid_fraction:.0f}%)")
    # Nearest valid pixel: distance transform over the invalid set, labelled by source pixel.
    _, labels = cv2.distanceTransformWithLabels((~valid).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    src = np.zeros(int(labels.max()) + 1, np.float32)
    src[labels[valid]] = d[valid]
    out = d.copy()
    out[~valid] = src[labels[~valid]]
    return out


# ----------------------------------------------------------------------------- discovery
def _find_dir(root, names):
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.is_dir() and p.name.lower() in names:
            return p
    return None


def _name(rel):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(Path(rel).with_suffix("")).replace("/", "_"))


def list_pairs(root, fmt):
    """Discover the RGB-D pairs under ``root`` for format ``fmt``, sorted by name.

    A file without its partner is still listed (with the expected partner path) so loading it
    reports the missing file by name. Raises DataError if ``root`` holds nothing usable.
    """
    if fmt not in FORMATS:
        raise ValueError(f"rgbd format must be one of {FORMATS}, got {fmt!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: RGB-D folder does not exist")
    pairs = []
    if fmt == "middlebury":
        scenes = sorted({p.parent for pat in ("im0.png", "disp0.pfm", "calib.txt")
                         for p in root.rglob(pat)})
        for s in scenes:
            pairs.append(RGBDPair(_name(s.relative_to(root)) if s != root else s.name,
                                  s / "im0.png", s / "disp0.pfm", fmt, s / "calib.txt"))
    else:
        img_dir = _find_dir(root, _IMAGE_DIRS)
        dep_dir = _find_dir(root, _DEPTH_DIRS)
        if img_dir is None or dep_dir is None:
            raise DataError(f"{root}: expected an image folder ({'|'.join(_IMAGE_DIRS)}) beside "
                            f"a depth folder ({'|'.join(_DEPTH_DIRS)})")
        depth_exts = {"sintel": (".dpt",), "synthia": (".png",), "generic": (".png", ".npy")}[fmt]
        images = {p.relative_to(img_dir).with_suffix(""): p for p in img_dir.rglob("*")
                  if p.is_file() and p.suffix.lower() in _IMAGE_EXTS}
        depths = {p.relative_to(dep_dir).with_suffix(""): p for p in dep_dir.rglob("*")
                  if p.is_file() and p.suffix.lower() in depth_exts}
        for rel in sorted(set(images) | set(depths)):
            ip = images.get(rel, img_dir / rel.with_suffix(".png"))
            dp = depths.get(rel, dep_dir / rel.with_suffix(depth_exts[0]))
            pairs.append(RGBDPair(_name(rel), ip, dp, fmt))
    if not pairs:
        raise DataError(f"{root}: no {fmt} RGB-D pairs found")
    return pairs


# ----------------------------------------------------------------------------- loading
def load_pair(pair, depth_scale=None, max_invalid_fraction=DEFAULT_MAX_INVALID_FRACTION):
    """Load one ``RGBDPair`` -> (image float32 (H, W, 3) sRGB [0, 1], depth float32 (H, W) mm).

    depth_scale: mm per stored unit (None = format default; unused for Middlebury, whose depth
    comes from the calibration). Raises DataError naming the bad file.
    """
    for p in (pair.image_path, pair.depth_path, pair.calib_path):
        if p is not None and not Path(p).is_file():
            raise DataError(f"{p}: missing file (pair '{pair.name}')")
    scale = DEFAULT_DEPTH_SCALE[pair.format] if depth_scale is None else float(depth_scale)
    if not scale > 0:
        raise ValueError(f"depth_scale must be > 0, got {depth_scale}")
    try:
        image = imageio.read_image(pair.image_path)
    except imageio.ImageReadError as e:
        raise DataError(str(e)) from e
    dpath = Path(pair.depth_path)
    if pair.format == "middlebury":
        disp = read_pfm(dpath)
        if disp.ndim == 3:
            disp = disp[..., 0]
        cal = read_middlebury_calib(pair.calib_path)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = cal["baseline"] * cal["f"] / (disp.astype(np.float64) + cal["doffs"])
        depth = depth.astype(np.float32)
    elif pair.format == "sintel":
        depth = read_dpt(dpath) * np.float32(scale)
    elif pair.format == "synthia":
        raw = _read_depth_png(dpath)
        sky = raw == SYNTHIA_SKY
        depth = raw.astype(np.float32) * np.float32(scale)
        if sky.all():
            raise DataError(f"{dpath}: depth is sky (65535) everywhere")
        if sky.any():
            finite = depth[~sky & (raw > 0)]
            if finite.size == 0:
                raise DataError(f"{dpath}: no valid depth besides sky")
            depth[sky] = finite.max()  # sky is as far as the farthest finite depth
    else:
        raw = _read_npy(dpath) if dpath.suffix.lower() == ".npy" else _read_depth_png(dpath)
        depth = raw.astype(np.float32) * np.float32(scale)
    if depth.shape != image.shape[:2]:
        raise DataError(f"{dpath}: depth is {depth.shape[1]}x{depth.shape[0]} but image "
                        f"{pair.image_path} is {image.shape[1]}x{image.shape[0]}")
    depth = clean_depth(depth, str(dpath), max_invalid_fraction)
    return image, depth
