"""Readers for the public defocus / blur-detection data-set layouts.

Each reader lists ``Example(image, label)`` path pairs (matched by file stem) and knows how to
decode its labels into float32 arrays in this project's units (docs/ARCHITECTURE.md):

* sigma labels: Gaussian-equivalent blur sigma in pixels, (H, W) float32;
* mask labels: binary blur masks, (H, W) float32 in {0, 1}, 1 = blurred (out of focus).

Layouts (``<root>`` is what the user passes):

* SYNDOF: ``<root>/image/*`` + ``<root>/blur_map/*.png``. Two label conventions, chosen
  explicitly (they cannot be told apart from the files); this module owns the codec
  (``encode_syndof_sigma`` / ``syndof_sigma_from_array``, also used by the generator):
  ``"sigma10"`` - integer value v = sigma * 10 (uint16, 3 equal channels). Written by the
  public SYNDOF generator and by ``tf_defocus.generate``. sigma = v / 10.
  ``"released"`` - the released SYNDOF that trained DMENet: v / 10 = x with x in [1, 15] and
  sigma = (x - 1) / 2 (max 7 px). The authors' loader (DMENet ``utils.get_images``, mode
  'DEPTH') reads channel 1 of the PNG, divides by 10, clamps x below 1 to 1 and computes
  (x - 1) / 2; older versions of it divide x by ``max_coc = 15``.
* CUHK blur detection: ``<root>/image/*`` + ``<root>/gt/*``. Polarity differs between copies,
  so ``blurred_value`` (255: white = blurred, 0: black = blurred) is a required argument. The
  copy DMENet trained on has white = sharp: its loader computes ``1 - gt / 255``, i.e.
  ``blurred_value=0``.
* DUT-DBD (Zhao et al., CVPR 2018): released as ``DUT600S_Training``/``DUT600GT_Training`` and
  ``DUT500S-Testing``/``DUT500GT-Testing``; the copies most DBD code uses are laid out as
  ``dut500-source``/``dut500-gt`` (test) and ``1204source``/``1204gt`` (train, CUHK + DUT),
  ``source``/``gt`` or ``image``/``gt``; all are recognised. Defocus-blur-detection papers
  draw the in-focus region white, so the usual value is ``blurred_value=0``; it is still a
  required argument because copies differ (not verified against the files here).
* RTF (D'Andres et al.; 22 real photos): ``<root>/image/*`` + ``<root>/gt/*.npy`` holding the
  Gaussian sigma in px (the authors ship MATLAB ``.mat`` maps; convert them to ``.npy`` of
  Gaussian sigma first). Evaluation clips sigma at ``units.RTF_SIGMA_CLIP_PX``.
* A flat folder of unlabelled photos (e.g. DMENet's ``Flickr/``).

Bad input (missing pair, duplicate stem, unreadable file, size mismatch) raises ``DataError``
or ``imageio.ImageReadError`` naming the file; with ``skip_bad=True`` listing problems are
logged as warnings naming the file and the example is dropped.
"""

import dataclasses
import functools
import logging
import os
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np

from tf_defocus import imageio
from tf_defocus.data.errors import DataError

log = logging.getLogger(__name__)

LABEL_CONVENTIONS = ("sigma10", "released")
SYNDOF_SIGMA_SCALE = 10.0
"""SYNDOF ``blur_map`` values are ``round(x * 10)`` (x = sigma [px] for ``sigma10``)."""
BLURRED_VALUES = (255, 0)
MASK_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".webp")
NPY_EXTENSIONS = (".npy",)

# Known (image dir, gt dir) names of the DUT-DBD copies, in the order they are tried.
DUT_LAYOUTS = (
    ("image", "gt"),
    ("source", "gt"),
    ("images", "masks"),
    ("dut500-source", "dut500-gt"),
    ("DUT500S-Testing", "DUT500GT-Testing"),
    ("DUT600S_Training", "DUT600GT_Training"),
    ("1204source", "1204gt"),
    ("test_data/DUT/dut500-source", "test_data/DUT/dut500-gt"),
    ("train_data/1204source", "train_data/1204gt"),
)


class Example(NamedTuple):
    """One data-set item: image path and label path (None for unlabelled photos)."""
    image: str
    label: Optional[str] = None


# ----------------------------------------------------------------------------------------------
# Listing and pairing


def _is_hidden(path):
    # Skips our own atomic temp files (".<stem>.<rand>.tmp.png") and OS clutter.
    return Path(path).name.startswith(".")


def _index_dir(folder, extensions):
    """Stem -> path of the visible files in ``folder`` with one of ``extensions``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    index, dupes = {}, []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or _is_hidden(p) or p.suffix.lower() not in extensions:
            continue
        if p.stem in index:
            dupes.append(f"{p}: same stem as {index[p.stem]}")
            continue
        index[p.stem] = str(p)
    if dupes:
        raise DataError("files with the same stem cannot be paired:\n  " + "\n  ".join(dupes))
    return index


def _report(problems, skip_bad, what):
    """Raise (fail fast) or log each problem (skip mode)."""
    if not problems:
        return
    if skip_bad:
        for p in problems:
            log.warning("skipping %s", p)
        return
    shown = "\n  ".join(problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    raise DataError(f"{what}: {len(problems)} problem(s):\n  {shown}{more}")


def pair_by_stem(image_dir, label_dir, label_extensions, *, skip_bad=False, label_suffix=""):
    """Pair ``image_dir/<stem>.<img ext>`` with ``label_dir/<stem><label_suffix>.<label ext>``.

    Returns a sorted list of ``Example``. An image without a label or a label without an image
    is a problem: ``DataError`` naming the file(s), or (``skip_bad``) a logged warning and the
    item dropped. Raises ``DataError`` if no pair is left.
    """
    images = _index_dir(image_dir, imageio.IMAGE_EXTENSIONS)
    labels = _index_dir(label_dir, tuple(label_extensions))
    if not images:
        raise DataError(f"{image_dir}: folder holds no images ({', '.join(imageio.IMAGE_EXTENSIONS)})")
    problems, out, used = [], [], set()
    for stem, img in images.items():
        lab = labels.get(stem + label_suffix)
        if lab is None:
            problems.append(f"{img}: no label {Path(label_dir) / (stem + label_suffix)}"
                            f".{{{','.join(e[1:] for e in label_extensions)}}}")
            continue
        used.add(stem + label_suffix)
        out.append(Example(img, lab))
    for stem, lab in labels.items():
        if stem not in used:
            problems.append(f"{lab}: label without an image in {image_dir}")
    _report(problems, skip_bad, f"pairing {image_dir} with {label_dir}")
    if not out:
        raise DataError(f"{image_dir} + {label_dir}: no (image, label) pairs")
    return out


def list_unlabelled(folders, *, skip_bad=False):
    """Images of one or more flat folders (non-recursive, hidden files ignored) as Examples."""
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    out = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder")
        found = [Example(str(p)) for p in sorted(folder.iterdir())
                 if p.is_file() and not _is_hidden(p) and p.suffix.lower() in imageio.IMAGE_EXTENSIONS]
        if not found:
            _report([f"{folder}: folder holds no images"], skip_bad, "listing unlabelled photos")
        out.extend(found)
    if not out:
        raise DataError(f"{', '.join(map(str, folders))}: no images")
    return out


# ----------------------------------------------------------------------------------------------
# Label decoders


def read_label_array(path):
    """Raw integer label image as stored: (H, W) or (H, W, C) uint8/uint16, EXIF applied.

    Raises ``DataError`` naming ``path`` for a missing, empty, corrupt or truncated file.
    """
    try:
        return imageio.read_raw_image(path)
    except imageio.ImageReadError as e:
        raise DataError(str(e)) from e


def decode_syndof_sigma(path, label_convention):
    """SYNDOF ``blur_map`` PNG -> sigma [px], float32 (H, W), >= 0.

    ``label_convention``: ``"sigma10"`` (sigma = v / 10) or ``"released"``
    (sigma = (max(v / 10, 1) - 1) / 2), see the module docstring.
    """
    _check_convention(label_convention)
    return syndof_sigma_from_array(read_label_array(path), label_convention)


def _check_convention(label_convention):
    if label_convention not in LABEL_CONVENTIONS:
        raise ValueError(f"label_convention must be one of {LABEL_CONVENTIONS}, got {label_convention!r}")


def syndof_sigma_from_array(raw, label_convention):
    """SYNDOF ``blur_map`` values (integer (H, W) or (H, W, C)) -> sigma [px], float32 (H, W)."""
    _check_convention(label_convention)
    raw = np.asarray(raw)
    if raw.ndim == 3:
        # 3 equal channels; channel 1 is G in both BGR and RGB order, as the authors read it.
        raw = raw[..., 1] if raw.shape[-1] >= 2 else raw[..., 0]
    # One-pass ufuncs (astype + divide allocates twice and costs ~10x more on 640x480 maps).
    v = np.divide(raw, np.float32(SYNDOF_SIGMA_SCALE), dtype=np.float32)
    if label_convention == "sigma10":
        return v
    np.maximum(v, np.float32(1.0), out=v)
    v -= np.float32(1.0)
    v /= np.float32(2.0)
    return v


def encode_syndof_sigma(sigma_px, label_convention="sigma10"):
    """Inverse of ``decode_syndof_sigma``: sigma [px] (H, W) -> uint16 (H, W, 3) label image."""
    _check_convention(label_convention)
    s = np.maximum(np.asarray(sigma_px, np.float32), 0.0)
    if label_convention == "sigma10":
        v = s * SYNDOF_SIGMA_SCALE
    else:   # released
        v = (2.0 * s + 1.0) * SYNDOF_SIGMA_SCALE
    v = np.clip(np.round(v), 0, 65535).astype(np.uint16)
    return np.repeat(v[..., None], 3, axis=-1)


def decode_binary_mask(path, blurred_value):
    """Binary blur-mask image -> float32 (H, W) in {0, 1}, 1 = blurred.

    ``blurred_value``: 255 if white marks blurred pixels, 0 if black does. Colour masks use the
    channel maximum; a mask stored as 0/1 values is recognised (its "white" is 1). Pixels are
    thresholded at half of white, which also absorbs JPEG ringing.
    """
    if blurred_value not in BLURRED_VALUES:
        raise ValueError(f"blurred_value must be 255 (white = blurred) or 0 (black = blurred), "
                         f"got {blurred_value!r}")
    raw = read_label_array(path)
    if raw.ndim == 3:
        raw = raw.max(axis=-1)
    white = 65535.0 if raw.dtype == np.uint16 else 255.0
    if raw.max() <= 1:
        white = 1.0
    bright = raw > white / 2.0
    blurred = bright if blurred_value == 255 else ~bright
    return blurred.astype(np.float32)


def decode_sigma_npy(path):
    """``.npy`` Gaussian sigma map [px] -> float32 (H, W); rejects NaN/Inf/negative values."""
    path = str(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from e
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise DataError(f"{path}: expected an (H, W) sigma map, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: sigma map has non-numeric dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{path}: sigma map contains NaN or Inf")
    if arr.min() < 0:
        raise DataError(f"{path}: sigma map has negative values (min {arr.min():g})")
    return arr


# ----------------------------------------------------------------------------------------------
# Sources: examples + how to load them


@dataclasses.dataclass(frozen=True)
class FileSource:
    """A listed data set: examples plus the decoder of their labels.

    name: short description used in messages.
    examples: tuple of ``Example``.
    label_kind: ``"sigma"`` (sigma px), ``"mask"`` (1 = blurred) or None (unlabelled).
    decode_label: path -> float32 (H, W) in ``label_kind`` units (None when unlabelled).
    crop_to_common: crop image and label to their common top-left region instead of failing
      on a size mismatch (the RTF protocol does this).
    """
    name: str
    examples: tuple
    label_kind: Optional[str]
    decode_label: Optional[Callable[[str], np.ndarray]] = None
    crop_to_common: bool = False

    def __len__(self):
        return len(self.examples)

    def load(self, example):
        """Example -> (image float32 (H, W, 3) RGB [0, 1], label float32 (H, W) or None).

        Raises ``imageio.ImageReadError`` / ``DataError`` naming the file on bad input,
        including an image/label size mismatch.
        """
        image = imageio.read_image(example.image)
        if self.decode_label is None or example.label is None:
            return image, None
        label = self.decode_label(example.label)
        if label.shape != image.shape[:2]:
            if not self.crop_to_common:
                raise DataError(f"{example.label}: label is {label.shape[1]}x{label.shape[0]} px "
                                f"but image {example.image} is {image.shape[1]}x{image.shape[0]} px")
            h = min(label.shape[0], image.shape[0])
            w = min(label.shape[1], image.shape[1])
            image, label = image[:h, :w], label[:h, :w]
        return image, label


def syndof(root, label_convention, *, skip_bad=False):
    """SYNDOF layout ``<root>/image`` + ``<root>/blur_map`` -> sigma source.

    ``label_convention`` ("sigma10" | "released") is required; see the module docstring.
    """
    if label_convention not in LABEL_CONVENTIONS:
        raise ValueError(f"label_convention must be one of {LABEL_CONVENTIONS}, got {label_convention!r}")
    root = Path(root)
    examples = pair_by_stem(root / "image", root / "blur_map", (".png",), skip_bad=skip_bad)
    return FileSource(f"SYNDOF {root}", tuple(examples), "sigma",
                      functools.partial(decode_syndof_sigma, label_convention=label_convention))


def blur_masks(image_dir, gt_dir, blurred_value, *, skip_bad=False, label_suffix="", name=None):
    """Explicit image folder + binary-mask folder -> mask source (1 = blurred)."""
    if blurred_value not in BLURRED_VALUES:
        raise ValueError(f"blurred_value must be 255 (white = blurred) or 0 (black = blurred), "
                         f"got {blurred_value!r}")
    examples = pair_by_stem(image_dir, gt_dir, MASK_EXTENSIONS, skip_bad=skip_bad,
                            label_suffix=label_suffix)
    return FileSource(name or f"blur masks {image_dir}", tuple(examples), "mask",
                      functools.partial(decode_binary_mask, blurred_value=blurred_value))


def cuhk(root, blurred_value, *, skip_bad=False):
    """CUHK blur-detection layout ``<root>/image`` + ``<root>/gt`` -> mask source.

    ``blurred_value`` is required (255: white = blurred; 0: black = blurred).
    """
    root = Path(root)
    for sub in ("image", "gt"):
        if not (root / sub).is_dir():
            raise DataError(f"{root}: not a CUHK layout (missing folder {root / sub}); expected "
                            f"<root>/image and <root>/gt")
    return blur_masks(root / "image", root / "gt", blurred_value, skip_bad=skip_bad,
                      name=f"CUHK {root}")


def find_dut_layout(root):
    """(image_dir, gt_dir) of a DUT-DBD copy under ``root``; ``DataError`` if none or several."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    found = [(root / i, root / g) for i, g in DUT_LAYOUTS if (root / i).is_dir() and (root / g).is_dir()]
    if not found:
        raise DataError(f"{root}: no DUT-DBD layout found; expected one of "
                        + ", ".join(f"{i}/ + {g}/" for i, g in DUT_LAYOUTS))
    if len(found) > 1:
        raise DataError(f"{root}: several image/gt folder pairs ({', '.join(f'{i.name}+{g.name}' for i, g in found)}); "
                        f"point at one explicitly with blur_masks(image_dir, gt_dir, ...)")
    return found[0]


def dut_dbd(root, blurred_value, *, skip_bad=False):
    """DUT-DBD (any of ``DUT_LAYOUTS`` under ``root``) -> mask source; ``blurred_value`` required
    (0 for the copies that draw the in-focus region white)."""
    image_dir, gt_dir = find_dut_layout(root)
    return blur_masks(image_dir, gt_dir, blurred_value, skip_bad=skip_bad, name=f"DUT-DBD {root}")


def rtf(root, *, skip_bad=False):
    """RTF layout ``<root>/image`` + ``<root>/gt/*.npy`` (Gaussian sigma px) -> sigma source.

    Image and map are cropped to their common size, as the authors' RTF evaluation does.
    """
    root = Path(root)
    examples = pair_by_stem(root / "image", root / "gt", NPY_EXTENSIONS, skip_bad=skip_bad)
    return FileSource(f"RTF {root}", tuple(examples), "sigma", decode_sigma_npy, crop_to_common=True)


def unlabelled(folders, *, skip_bad=False):
    """Flat folder(s) of photos -> unlabelled source."""
    examples = list_unlabelled(folders, skip_bad=skip_bad)
    name = folders if isinstance(folders, (str, os.PathLike)) else ", ".join(map(str, folders))
    return FileSource(f"photos {name}", tuple(examples), None, None)


def mask_source(root, layout, blurred_value, *, skip_bad=False):
    """Dispatch ``layout`` ("cuhk" | "dut") to ``cuhk`` / ``dut_dbd``."""
    if layout == "cuhk":
        return cuhk(root, blurred_value, skip_bad=skip_bad)
    if layout == "dut":
        return dut_dbd(root, blurred_value, skip_bad=skip_bad)
    raise ValueError(f"mask layout must be 'cuhk' or 'dut', got {layout!r}")
