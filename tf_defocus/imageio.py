"""Robust image reading and atomic file writing shared by every CLI.

``read_image`` turns any photo on disk (8/16-bit, grayscale, RGBA, EXIF-rotated PNG/JPEG/...)
into float32 RGB in [0, 1], shape (H, W, 3), or raises ``ImageReadError`` naming the file.
Writers go through ``atomic_path`` so an interrupted run never leaves a half-written file.
"""

import contextlib
import glob
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MIN_IMAGE_SIDE = 8
MAX_IMAGE_PIXELS = 200_000_000
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class ImageReadError(ValueError):
    """A file that is not a readable image (message names the file)."""


def to_rgb_float(array, name="<array>"):
    """Any image array -> float32 RGB in [0, 1], shape (H, W, 3).

    Accepts (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (alpha dropped); uint8, uint16
    (scaled by 65535), bool, or float (assumed already in [0, 1]; NaN/Inf rejected).
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ImageReadError(f"{name}: expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageReadError(f"{name}: empty image of shape {a.shape}")
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.dtype == np.uint8:
        out = np.divide(a, np.float32(255.0), dtype=np.float32)
    elif a.dtype == np.uint16:
        out = np.divide(a, np.float32(65535.0), dtype=np.float32)
    elif a.dtype == bool:
        out = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise ImageReadError(f"{name}: image contains NaN or Inf values")
        out = np.clip(out, 0.0, 1.0)
    else:
        raise ImageReadError(f"{name}: unsupported pixel type {a.dtype}")
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


def read_raw_image(path, flags=cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR):
    """Decode an image file as stored: (H, W) or (H, W, C) uint8/uint16, OpenCV (BGR) order.

    The default flags keep 16-bit data and the channel count and, unlike
    ``cv2.IMREAD_UNCHANGED``, apply the EXIF orientation tag (alpha is dropped). Raises
    ``ImageReadError`` naming ``path`` for a missing, empty, corrupt, truncated or non-image file.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ImageReadError(f"{path}: no such file")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    img = cv2.imdecode(data, flags)
    if img is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
    if _looks_truncated(data):
        raise ImageReadError(f"{path}: truncated image file")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: unsupported pixel type {img.dtype}")
    return img


def read_image(path):
    """Read an image file as float32 RGB in [0, 1], (H, W, 3), EXIF orientation applied.

    Raises ``ImageReadError`` (naming ``path``) for a missing, corrupt, truncated or non-image
    file, or an image smaller than ``MIN_IMAGE_SIDE`` px on a side.
    """
    img = read_raw_image(path)
    if min(img.shape[:2]) < MIN_IMAGE_SIDE:
        raise ImageReadError(f"{path}: image is {img.shape[1]}x{img.shape[0]} px; need at least "
                             f"{MIN_IMAGE_SIDE} px on each side")
    if img.shape[0] * img.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageReadError(f"{path}: image has {img.shape[0] * img.shape[1] / 1e6:.0f} MP; "
                             f"limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[-1] == 4 else cv2.COLOR_BGR2RGB)
    return to_rgb_float(img, path)


def _looks_truncated(data):
    """OpenCV decodes truncated PNG/JPEG files partially; check their end markers."""
    if data[:8].tobytes() == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-16:].tobytes()
    if data[:2].tobytes() == b"\xff\xd8":
        return b"\xff\xd9" not in data[-4096:].tobytes()
    return False


def list_images(inputs):
    """Expand files, folders (non-recursive, sorted) and glob patterns into a list of Paths.

    Files given explicitly are kept even if their extension is unknown (so a bad one is
    reported by name instead of silently ignored). Raises FileNotFoundError for an input that
    matches nothing.
    """
    out = []
    for item in inputs:
        item = str(item)
        if os.path.isdir(item):
            found = sorted(p for p in Path(item).iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise FileNotFoundError(f"{item}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            out.extend(found)
        elif os.path.isfile(item):
            out.append(Path(item))
        else:
            matches = sorted(glob.glob(item))
            if not matches:
                raise FileNotFoundError(f"{item}: no such file, folder or glob match")
            out.extend(Path(m) for m in matches if os.path.isfile(m))
    return out


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_image(path, array):
    """Atomically write an RGB (H, W, 3) or single-channel (H, W) uint8/uint16 array."""
    a = np.asarray(array)
    if a.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"write_image expects uint8 or uint16, got {a.dtype}")
    if a.ndim == 3 and a.shape[-1] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    ext = Path(path).suffix or ".png"
    ok, buf = cv2.imencode(ext, a)
    if not ok:
        raise OSError(f"{path}: could not encode image")
    write_bytes(path, buf.tobytes())


def write_bytes(path, data):
    """Atomically write ``data`` (bytes) to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_npy(path, array):
    """Atomically write a NumPy array as .npy."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_text(path, text):
    """Atomically write a UTF-8 text file."""
    write_bytes(path, text.encode("utf-8"))
