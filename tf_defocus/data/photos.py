"""Real photographs that installed packages ship, used as surface textures and as the unlabelled
real domain of DMENet's discriminator (no downloads: every file comes from a package).

Sources (all looked up by path at run time; missing packages are simply absent):

* scikit-image (PyPI ``scikit-image``, bundled in ``skimage/data``): natural photos and
  photographic textures. Not its Middlebury stereo pair (``motorcycle_*``: reserved for
  evaluation), nor motion-blurred or synthetic images (``clock_motion``, ``chessboard_*``,
  ``horse``, ``logo``, ``phantom``, ``color``).
* Debian ``mate-backgrounds`` (``/usr/share/backgrounds/mate/nature``): 12 nature photographs,
  many with a real shallow depth of field.
* Debian ``ukui-wallpapers`` (``/usr/share/backgrounds``): rendered illustrations with large
  smooth gradients and crisp edges -- the smooth in-focus surfaces real photos are full of.
* Debian ``lomiri-wallpapers-16.04`` (``/usr/share/backgrounds``, the Ubuntu Touch wallpapers):
  14 everyday photographs (a room, a dog at a window, a fig on a plate, mountains, a clock, a
  dragonfly...), some with a real shallow depth of field. Held out: validation only
  (``LOMIRI_PHOTOS``; the package's one illustration is not used).
* Debian ``plasma-workspace-wallpapers`` (``/usr/share/wallpapers/<Name>/contents/images``, KDE
  Plasma 5.27): 11 photographs (a pier in fog, boats at a lake, cups, leaves, a forest path,
  architecture, a kite in the sky...; ``PLASMA_PHOTOS``, the other 19 are illustrations).
  Optional extra training photos: split ``train+plasma`` (``--pool_photos`` of training), not in
  ``train``, so the default recipe's pools do not depend on them.

Install the Debian ones with ``apt-get install mate-backgrounds ukui-wallpapers
lomiri-wallpapers-16.04`` (``APT_PACKAGES``; ``plasma-workspace-wallpapers``, ``PLASMA_PACKAGE``,
for ``train+plasma``). Adding training photos changes the training pools
(their cache key holds the ``fingerprint`` of the ``train`` split), so the default model's recipe
uses exactly these.

Photos are split once, by name, into ``train`` and ``val`` (held out for the validation set and
the qualitative montage), so validation scenes never show a training texture.

Crops used as textures must be sharp (a texture in focus must not carry the photo's own
defocus): every photo gets a *blur-suspect* mask -- pixels where the image varies at a coarse
scale (local std of a sigma-3 blur) but has little fine detail (local max of a sigma-0.7
Laplacian) -- and crops with more than ``MAX_SUSPECT_FRACTION`` suspect pixels are rejected.
Flat regions are not suspect (a flat region is sharp at any focus).
"""

import dataclasses
import glob
import hashlib
import math
import os
from pathlib import Path

import cv2
import numpy as np

from tf_defocus import imageio

SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png",
                  "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
                  "moon.png", "page.png", "rocket.jpg", "text.png")
APT_PACKAGES = ("mate-backgrounds", "ukui-wallpapers", "lomiri-wallpapers-16.04")
"""Debian packages whose photos this module uses (``apt-get install`` them)."""
DEBIAN_PHOTO_GLOBS = ("/usr/share/backgrounds/mate/nature/*.jpg",)
DEBIAN_ILLUSTRATIONS = tuple(f"/usr/share/backgrounds/{n}" for n in (
    "calla.png", "city.png", "desert.png", "goldfish.png", "the-mouse.jpg", "string.jpg",
    "rhythm.jpg", "2004default.jpg", "firstgeneration.jpg"))
LOMIRI_PHOTOS = tuple(f"/usr/share/backgrounds/{n}_by_{a}.jpg" for n, a in (
    ("Bridge", "Sander_Klootwijk"), ("Dragonfly", "Bolly"), ("Picture_0B", "freespace"),
    ("Picture_1A", "freespace"), ("Wine", "Jakkub_Mede"), ("aitzgorri", "Aitzol_Berasategi"),
    ("analogpattern", "Peter_Nerlich"), ("free", "Peter_Nerlich"),
    ("friends", "Aitzol_Berasategi"), ("greentock", "Peter_Nerlich"),
    ("life", "Aitzol_Berasategi"), ("picosdeeuropa", "Aitzol_Berasategi"),
    ("seeding", "Clements_Engelhardt"), ("sunset", "Aitzol_Berasategi")))
"""The photographs of Debian ``lomiri-wallpapers-16.04`` (its ``umang`` illustration left out);
all held out (``VAL_PHOTOS``)."""
PLASMA_PACKAGE = "plasma-workspace-wallpapers"
PLASMA_DIR = "/usr/share/wallpapers"
PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
                 "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")
"""The photographs of Debian ``plasma-workspace-wallpapers`` (folder names; each is read from
its largest JPEG, 2560x1600). Named ``<folder>.jpg`` here (the files are all named by size)."""
VAL_PHOTOS = frozenset({"astronaut.png", "coffee.png", "chelsea.png", "Dune.jpg", "TwoWings.jpg",
                        "Garden.jpg", "city.png", "goldfish.png"} | {Path(p).name for p in LOMIRI_PHOTOS})
"""Held out of training: validation scenes and the qualitative montage use only these."""
SPLITS = ("train", "train+plasma", "val", "all")
"""``train`` and ``val`` are disjoint; ``train+plasma`` is ``train`` plus ``PLASMA_PHOTOS``;
``all`` is every listed photo."""
LIBRARY_MAX_SIDE = 1024
"""Photos are held at most this large [px] (long side); wallpapers are downscaled 1.6-3.8x."""
MAX_SUSPECT_FRACTION = 0.04


def _skimage_dir():
    try:
        import skimage
    except ImportError:
        return None
    return Path(skimage.__file__).parent / "data"


def photo_name(path):
    """Name of a package photo: its file name, or ``<folder>.jpg`` for a Plasma wallpaper."""
    path = Path(path)
    if str(path).startswith(PLASMA_DIR + "/") and path.parent.name == "images":
        return path.parents[2].name + path.suffix
    return path.name


def _plasma_photos():
    """Installed ``PLASMA_PHOTOS``: the largest JPEG of each folder."""
    area = lambda f: math.prod(int(v) for v in Path(f).stem.split("x"))
    out = []
    for name in PLASMA_PHOTOS:
        files = glob.glob(f"{PLASMA_DIR}/{name}/contents/images/*x*.jpg")
        if files:
            out.append(Path(max(files, key=area)))
    return out


def package_photos(split="train"):
    """Sorted paths of the package photos of ``split`` (``SPLITS``) that are installed on this
    machine."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    paths = []
    d = _skimage_dir()
    if d is not None:
        paths += [d / n for n in SKIMAGE_PHOTOS]
    for pattern in DEBIAN_PHOTO_GLOBS:
        paths += [Path(p) for p in glob.glob(pattern)]
    paths += [Path(p) for p in DEBIAN_ILLUSTRATIONS + LOMIRI_PHOTOS]
    if split in ("train+plasma", "all"):
        paths += _plasma_photos()
    paths = sorted({p for p in paths if p.is_file()}, key=lambda p: (photo_name(p), str(p)))
    if split == "all":
        return paths
    held = [p for p in paths if p.name in VAL_PHOTOS]
    return held if split == "val" else [p for p in paths if p.name not in VAL_PHOTOS]


def missing_photos(split="train"):
    """Sorted names of the listed package photos of ``split`` that are not installed here (the
    mate-backgrounds nature photos are found by glob, so only their held-out ones are listed)."""
    listed = {Path(p).name for p in DEBIAN_ILLUSTRATIONS + LOMIRI_PHOTOS} | set(SKIMAGE_PHOTOS)
    listed |= VAL_PHOTOS
    if split == "val":
        listed &= VAL_PHOTOS
    elif split.startswith("train"):
        listed -= VAL_PHOTOS
    if split in ("train+plasma", "all"):
        listed |= {n + ".jpg" for n in PLASMA_PHOTOS}
    return sorted(listed - {photo_name(p) for p in package_photos(split)})


def require_photos(split):
    """Raise ValueError naming the packages to install if ``split`` is ``train+plasma`` and
    any of its Plasma photos is missing (``train`` itself works with whatever is installed)."""
    if split != "train+plasma":
        return
    missing = [n for n in missing_photos(split) if Path(n).stem in PLASMA_PHOTOS]
    if missing:
        raise ValueError(f"photo split {split!r}: {len(missing)} Plasma photos are not installed "
                         f"({', '.join(missing[:3])}...): apt-get install {PLASMA_PACKAGE}")


def fingerprint(paths):
    """Short hash of the photo files' names and sizes (part of pool cache keys)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{photo_name(p)}:{os.path.getsize(p)};".encode())
    return h.hexdigest()[:12]


def blur_suspect_mask(image):
    """Bool (H, W): varies at a coarse scale but lacks fine detail (defocus-looking).

    image: float32 (H, W, 3) sRGB [0, 1].
    """
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    fine = np.abs(cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 0.7), cv2.CV_32F))
    fine = cv2.blur(cv2.dilate(fine, np.ones((5, 5), np.uint8)), (15, 15))
    coarse_img = cv2.GaussianBlur(g, (0, 0), 3.0)
    mean = cv2.blur(coarse_img, (15, 15))
    var = np.maximum(cv2.blur(coarse_img * coarse_img, (15, 15)) - mean * mean, 0.0)
    coarse = np.sqrt(var)
    return (coarse > 0.02) & (fine < 0.6 * coarse)


@dataclasses.dataclass(frozen=True)
class Box:
    """Where a texture crop comes from: photo ``name`` (library ``index``), top-left (y0, x0),
    size (height, width) [library px], ``scale`` (output px per library px, <= 1) and its
    fraction of blur-suspect pixels."""
    name: str
    index: int
    y0: int
    x0: int
    height: int
    width: int
    scale: float
    suspect: float


@dataclasses.dataclass
class _Photo:
    name: str
    image: np.ndarray      # float32 (H, W, 3) sRGB [0, 1], long side <= LIBRARY_MAX_SIDE
    suspect: np.ndarray    # float32 (H, W) 1 = blur suspect (for integral-image sums)
    integral: np.ndarray   # (H+1, W+1) float64 integral image of ``suspect``
    grey: bool             # a greyscale photo (tinted when cropped)


class PhotoLibrary:
    """Sharp textures cropped from real photos.

    paths: photo files (``package_photos(split)`` by default). Files load lazily on first use
    and stay in memory (about 12 MB per photo at 1024 px).
    """

    def __init__(self, paths=None, split="train"):
        self.paths = tuple(Path(p) for p in (package_photos(split) if paths is None else paths))
        self._photos = None

    def __len__(self):
        return len(self.paths)

    def _load(self):
        if self._photos is None:
            photos = []
            for p in self.paths:
                img = imageio.read_image(p)
                h, w = img.shape[:2]
                s = LIBRARY_MAX_SIDE / max(h, w)
                if s < 1:
                    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                                     interpolation=cv2.INTER_AREA)
                suspect = blur_suspect_mask(img).astype(np.float32)
                grey = float(np.abs(img - img.mean(axis=-1, keepdims=True)).max()) < 0.02
                photos.append(_Photo(photo_name(p), np.ascontiguousarray(img), suspect,
                                     cv2.integral(suspect, sdepth=cv2.CV_64F), grey))
            self._photos = photos
        return self._photos

    def images(self):
        """The photos at library size: list of float32 (H, W, 3) sRGB [0, 1]."""
        return [ph.image for ph in self._load()]

    def suspect_fraction(self, index, y0, x0, h, w):
        """Fraction of blur-suspect pixels in a box of photo ``index`` (library pixels)."""
        ii = self._load()[index].integral
        s = ii[y0 + h, x0 + w] - ii[y0, x0 + w] - ii[y0 + h, x0] + ii[y0, x0]
        return float(s) / max(1, h * w)

    def choose_box(self, rng, height, width, tries=8):
        """The library box a ``height`` x ``width`` crop comes from: up to ``tries`` random
        (photo, scale, position) draws, the first with at most ``MAX_SUSPECT_FRACTION``
        blur-suspect pixels, else the least suspect. Library must not be empty."""
        photos = self._load()
        best = None
        for _ in range(tries):
            i = int(rng.integers(len(photos)))
            H, W = photos[i].image.shape[:2]
            k = math.exp(rng.uniform(math.log(0.35), 0.0))  # output px per library px
            bh, bw = min(H, max(1, round(height / k))), min(W, max(1, round(width / k)))
            y0, x0 = int(rng.integers(0, H - bh + 1)), int(rng.integers(0, W - bw + 1))
            box = Box(photos[i].name, i, y0, x0, bh, bw, k,
                      self.suspect_fraction(i, y0, x0, bh, bw))
            if best is None or box.suspect < best.suspect:
                best = box
            if box.suspect <= MAX_SUSPECT_FRACTION:
                break
        return best

    def crop(self, rng, height, width, tries=8):
        """A sharp, colour-jittered crop (height, width, 3) float32 sRGB [0, 1].

        The crop is taken at a random scale (0.35..1 of library resolution, i.e. only ever
        downscaled), flipped / rotated, with random white balance, saturation, exposure and
        gamma. Photos smaller than the box are mirror-padded. Returns None if the library is
        empty.
        """
        photos = self._load()
        if not photos:
            return None
        height, width = int(height), int(width)
        b = self.choose_box(rng, height, width, tries)
        bh, bw, k = b.height, b.width, b.scale
        box = photos[b.index].image[b.y0:b.y0 + bh, b.x0:b.x0 + bw]
        oh, ow = max(1, round(bh * k)), max(1, round(bw * k))
        if (oh, ow) != (bh, bw):
            box = cv2.resize(box, (ow, oh), interpolation=cv2.INTER_AREA)
        if oh < height or ow < width:
            box = cv2.copyMakeBorder(box, 0, max(0, height - oh), 0, max(0, width - ow),
                                     cv2.BORDER_REFLECT_101 if min(oh, ow) > 1 else cv2.BORDER_REPLICATE)
            reps = (math.ceil(height / box.shape[0]), math.ceil(width / box.shape[1]), 1)
            box = np.tile(box, reps)
        box = box[:height, :width]
        if rng.random() < 0.5:
            box = box[:, ::-1]
        if rng.random() < 0.5:
            box = box[::-1]
        return jitter_colours(rng, np.ascontiguousarray(box, np.float32), tint=photos[b.index].grey)


def jitter_colours(rng, image, tint=False):
    """Random white balance (+-12% per channel; with ``tint``, for greyscale photos, a random
    colour cast of up to 50% per channel instead), saturation (x0.5..1.3), exposure (x0.6..1.4 in
    linear light) and gamma (0.8..1.25) of an sRGB float32 image; returns a new array in [0, 1]."""
    from tf_defocus.data.render import linear_to_srgb, srgb_to_linear
    lin = srgb_to_linear(image)
    balance = rng.uniform(0.5, 1.0, 3) if tint else rng.uniform(0.88, 1.12, 3)
    lin = lin * (balance / balance.max()).astype(np.float32) * np.float32(rng.uniform(0.6, 1.4))
    grey = lin.mean(axis=-1, keepdims=True)
    lin = grey + (lin - grey) * np.float32(rng.uniform(0.5, 1.3))
    out = linear_to_srgb(np.clip(lin, 0.0, 1.0)) ** np.float32(rng.uniform(0.8, 1.25))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


_LIBRARIES = {}


def library(split="train"):
    """Process-wide shared ``PhotoLibrary`` of the installed package photos of ``split``."""
    if split not in _LIBRARIES:
        _LIBRARIES[split] = PhotoLibrary(split=split)
    return _LIBRARIES[split]
