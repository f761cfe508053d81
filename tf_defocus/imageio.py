"""Robust image reading and atomic file writing shared by every CLI.

``read_image`` turns any photo on disk (8/16-bit, grayscale, RGBA, EXIF-rotated PNG/JPEG/...)
into float32 RGB in [0, 1], shape (H, W, 3), or raises ``ImageReadError`` naming the file.
Every decode failure is an ``ImageReadError``: the size an image claims in its header (PNG,
JPEG, BMP, GIF, WebP, TIFF, PNM/PAM/PFM) is checked against ``MAX_IMAGE_PIXELS`` before
anything is decoded, so a small file claiming a huge image is refused without allocating it.
A PNG or JPEG is complete when its own end (IEND chunk, EOI marker) is reached by walking its
chunks / segments as the decoder does; data after that end (phones' "motion photo" JPEGs
carry a video there) is ignored, like every decoder does.
Writers go through ``atomic_path`` so an interrupted run never leaves a half-written file.
"""

import contextlib
import glob
import os
import secrets
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MIN_IMAGE_SIDE = 8
MAX_IMAGE_PIXELS = 200_000_000
_TEMP_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"   # tempfile's; leftover cleaners match them


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
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read ({e.strerror or e})") from e
    return decode_image_bytes(data, path, flags)


def decode_image_bytes(data, name="<bytes>", flags=cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR):
    """``read_raw_image`` for an encoded image in memory; errors name ``name``."""
    if len(data) == 0:
        raise ImageReadError(f"{name}: empty file")
    size, truncated = _inspect(data)
    if size is not None:
        w, h = size
        if w < 1 or h < 1:
            raise ImageReadError(f"{name}: corrupt image header (size {w}x{h})")
        if w * h > MAX_IMAGE_PIXELS:
            raise ImageReadError(f"{name}: image is {w}x{h} px ({w * h / 1e6:.0f} MP) by its "
                                 f"header; limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP")
    if truncated:
        raise ImageReadError(f"{name}: truncated image file (the data ends before the image "
                             f"does)")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else "decoder error"
        raise ImageReadError(f"{name}: not a readable image ({reason})") from None
    except MemoryError:
        raise ImageReadError(f"{name}: not enough memory to decode this image") from None
    if img is None:
        raise ImageReadError(f"{name}: not a readable image (corrupt, truncated or unknown format)")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{name}: unsupported pixel type {img.dtype}")
    if img.shape[0] * img.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageReadError(f"{name}: image has {img.shape[0] * img.shape[1] / 1e6:.0f} MP; "
                             f"limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP")
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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman/arithmetic).
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                       0xCF))


def _u16be(b, i):
    return int.from_bytes(b[i:i + 2], "big")


def _png_walk(b):
    """(width, height, complete) of PNG bytes: chunks are walked (length, type, data, CRC) up
    to IEND; complete is False when the data ends first. Bytes after IEND are ignored."""
    n, pos, size = len(b), 8, None
    while pos + 8 <= n:
        length = int.from_bytes(b[pos:pos + 4], "big")
        ctype = b[pos + 4:pos + 8]
        if ctype == b"IHDR" and size is None and pos + 16 <= n:
            size = (int.from_bytes(b[pos + 8:pos + 12], "big"),
                    int.from_bytes(b[pos + 12:pos + 16], "big"))
        end = pos + 12 + length
        if end > n:
            return size, False
        if ctype == b"IEND":
            return size, True
        pos = end
    return size, False


def _jpeg_walk(b):
    """(width, height, complete) of JPEG bytes: segments are walked by their lengths (so an
    EXIF thumbnail's markers are skipped) and entropy-coded scans up to their next marker, as
    libjpeg does, until the EOI marker; complete is False when the data ends first. Bytes after
    EOI (a "motion photo" video, a second MPO frame) are ignored."""
    n, pos, size = len(b), 2, None
    while True:
        pos = b.find(b"\xff", pos)            # libjpeg skips stray bytes before a marker
        if pos < 0:
            return size, False
        while pos < n and b[pos] == 0xFF:     # fill bytes
            pos += 1
        if pos >= n:
            return size, False
        marker = b[pos]
        pos += 1
        if marker == 0xD9:                    # EOI
            return size, True
        if marker in (0x00, 0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            continue                          # no length field
        if pos + 2 > n:
            return size, False
        length = _u16be(b, pos)
        if marker in _JPEG_SOF and size is None and pos + 7 <= n:
            size = (_u16be(b, pos + 5), _u16be(b, pos + 3))   # (width, height)
        pos += length
        if pos > n:
            return size, False
        if marker == 0xDA:                    # start of scan: entropy-coded data follows
            while True:
                i = b.find(b"\xff", pos)
                if i < 0 or i + 1 >= n:
                    return size, False
                nxt = b[i + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:   # stuffed byte or restart marker
                    pos = i + 2
                elif nxt == 0xFF:                         # fill byte before a marker
                    pos = i + 1
                else:
                    pos = i
                    break


def is_truncated(data):
    """True for PNG / JPEG bytes that end before the image does (judged by walking the file as
    the decoder reads it, not by the last bytes: trailing data after the end is fine)."""
    return _inspect(data)[1]


def _tiff_size(b):
    little = b[:2] == b"II"
    order = "little" if little else "big"
    u = lambda i, k: int.from_bytes(b[i:i + k], order)
    big = u(2, 2) == 43                        # BigTIFF
    ifd = u(8, 8) if big else u(4, 4)
    count_len, entry_len, value_off = (8, 20, 12) if big else (2, 12, 8)
    if ifd + count_len > len(b):
        return None
    count = u(ifd, count_len)
    w = h = None
    for k in range(min(count, 4096)):
        e = ifd + count_len + k * entry_len
        if e + entry_len > len(b):
            break
        tag, typ = u(e, 2), u(e + 2, 2)
        if tag in (256, 257):
            value = u(e + value_off, 2) if typ == 3 else u(e + value_off, 4)
            if tag == 256:
                w = value
            else:
                h = value
    return (w, h) if w is not None and h is not None else None


def _pnm_size(b):
    """P1-P6 / PF / Pf: magic, width, height as whitespace-separated tokens (# comments);
    P7 (PAM): WIDTH / HEIGHT lines before ENDHDR."""
    head = b[:4096]
    if head[:2] == b"P7":
        w = h = None
        for line in head.split(b"\n")[1:]:
            parts = line.split()
            if len(parts) == 2 and parts[0] == b"WIDTH" and parts[1].isdigit():
                w = int(parts[1])
            elif len(parts) == 2 and parts[0] == b"HEIGHT" and parts[1].isdigit():
                h = int(parts[1])
            elif parts[:1] == [b"ENDHDR"]:
                break
        return (w, h) if w is not None and h is not None else None
    tokens = []
    for line in head[2:].split(b"\n"):
        tokens += line.split(b"#")[0].split()
        if len(tokens) >= 2:
            break
    if len(tokens) >= 2 and tokens[0].isdigit() and tokens[1].isdigit():
        return int(tokens[0]), int(tokens[1])
    return None


def header_size(data):
    """(width, height) an encoded image claims in its header, without decoding; None when
    the format is not recognised or the header is too short to tell.

    PNG (IHDR), JPEG (first SOF, EXIF thumbnails skipped), BMP, GIF, WebP (VP8, VP8L, VP8X),
    TIFF and BigTIFF (first IFD), PNM / PAM / PFM.
    """
    return _inspect(data)[0]


def _inspect(data):
    """(header size or None, truncated) of encoded image bytes."""
    b = data if isinstance(data, bytes) else bytes(data)
    if b[:8] == PNG_SIGNATURE:
        size, complete = _png_walk(b)
        return (size if b[12:16] == b"IHDR" else None), not complete
    if b[:2] == b"\xff\xd8":
        size, complete = _jpeg_walk(b)
        return size, not complete
    return _other_size(b), False


def _other_size(b):
    if b[:2] == b"BM" and len(b) >= 26:
        if int.from_bytes(b[14:18], "little") == 12:          # OS/2 BITMAPCOREHEADER
            return int.from_bytes(b[18:20], "little"), int.from_bytes(b[20:22], "little")
        return (abs(int.from_bytes(b[18:22], "little", signed=True)),
                abs(int.from_bytes(b[22:26], "little", signed=True)))
    if b[:6] in (b"GIF87a", b"GIF89a") and len(b) >= 10:
        return int.from_bytes(b[6:8], "little"), int.from_bytes(b[8:10], "little")
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP" and len(b) >= 30:
        chunk = b[12:16]
        if chunk == b"VP8 ":
            return (int.from_bytes(b[26:28], "little") & 0x3FFF,
                    int.from_bytes(b[28:30], "little") & 0x3FFF)
        if chunk == b"VP8L":
            bits = int.from_bytes(b[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
        return None
    if b[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+") and len(b) >= 16:
        return _tiff_size(b)
    if len(b) >= 3 and b[:1] == b"P" and b[1:2] in b"1234567fF" and b[2:3].isspace():
        return _pnm_size(b)
    return None


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


def _create_temp(path):
    """Create an empty file ``.<stem>.<8 random chars>.tmp<suffix>`` beside ``path`` (the names
    ``tempfile.mkstemp`` gives) with the usual file mode: 0o666 less the process umask, which
    the OS applies at creation, so the umask is never read or changed here. Returns
    ``(path, mode)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        name = "".join(secrets.choice(_TEMP_NAME_CHARS) for _ in range(8))
        tmp = path.parent / f".{path.stem}.{name}.tmp{path.suffix}"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            mode = os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(f"{path}: no free temporary name beside it")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _create_temp(path)
    try:
        yield tmp
        os.chmod(tmp, mode)   # in case the writer replaced the file (e.g. with mode 0600)
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
