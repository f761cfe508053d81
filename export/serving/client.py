#!/usr/bin/env python3
"""Send photos to a TF Serving REST endpoint running a tf_defocus SavedModel; save the maps.

Needs only Python 3.8+ and NumPy (Pillow, if installed, is used to apply EXIF orientation,
which the server's decoder ignores). No TensorFlow, no tf_defocus.

    python client.py photo.jpg other.png --server=http://localhost:8501 --model=blur_estimator \
        --out_dir=maps

For every photo it POSTs ``{"signature_name": "serving_default", "instances": [{"b64": ...}]}``
to ``/v1/models/<model>[/versions/<v>]:predict`` and writes, in ``--out_dir``:
  ``<stem>_sigma.npy``  float32 (H, W) blur sigma [px]  (defocus models)
  ``<stem>_sigma.png``  8-bit grey, 0 = sharp .. 255 = sigma 7 px
  ``<stem>_focus.npy``  float32 (H, W) focus in [0, 1], 1 = in focus
  ``<stem>_focus.png``  8-bit grey of the focus map
Photos that fail are reported by name; the exit status is 1 if any failed.
"""

import argparse
import base64
import io
import json
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zlib

import numpy as np

SIGMA_MAX_PX = 7.0   # sigma range of the model output (sigma/7 in [0, 1])


def upright_bytes(path):
    """File bytes; if Pillow is available and the photo has an EXIF rotation, the rotated
    pixels re-encoded as PNG (TF Serving's decoder does not apply EXIF orientation)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        from PIL import Image, ImageOps
    except ImportError:
        return data
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.getexif().get(0x0112, 1) in (1, None):
                return data
            im = ImageOps.exif_transpose(im).convert("RGB")
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - let the server report undecodable files
        return data


def predict_url(server, model, version=None):
    url = f"{server.rstrip('/')}/v1/models/{model}"
    if version:
        url += f"/versions/{int(version)}"
    return url + ":predict"


def request_maps(url, image_bytes, signature="serving_default", timeout=120.0):
    """POST one encoded image; returns {output name: float32 (H, W)}.

    Raises RuntimeError with the server's error message on failure.
    """
    body = json.dumps({"signature_name": signature,
                       "instances": [{"b64": base64.b64encode(image_bytes).decode("ascii")}]})
    req = urllib.request.Request(url, data=body.encode("utf-8"), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except ValueError:
            pass
        raise RuntimeError(f"server answered HTTP {e.code}: {detail.strip()[:500]}") from None
    except urllib.error.URLError as e:
        raise RuntimeError(f"cannot reach {url}: {e.reason}") from None
    if "error" in reply:
        raise RuntimeError(f"server error: {reply['error']}")
    preds = reply.get("predictions")
    if not isinstance(preds, list) or len(preds) != 1:
        raise RuntimeError(f"unexpected reply (no single prediction): {str(reply)[:200]}")
    pred = preds[0]
    if not isinstance(pred, dict):      # a signature with a single output omits the name
        pred = {"focus": pred}
    out = {}
    for name, value in pred.items():
        arr = np.asarray(value, np.float32)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim != 2:
            raise RuntimeError(f"output {name!r} has shape {arr.shape}; expected (H, W, 1)")
        out[name] = arr
    return out


def png_gray8(array):
    """Encode a uint8 (H, W) array as a PNG (zlib + struct only)."""
    a = np.ascontiguousarray(array, np.uint8)
    h, w = a.shape
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def write_atomic(path, data):
    """Write bytes to ``path`` via a temporary file and rename."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_maps(maps, out_dir, stem):
    """Write ``<stem>_sigma.npy/.png`` and ``<stem>_focus.npy/.png``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, short, scale in (("sigma_px", "sigma", 255.0 / SIGMA_MAX_PX), ("focus", "focus", 255.0)):
        if name not in maps:
            continue
        arr = maps[name]
        buf = io.BytesIO()
        np.save(buf, arr.astype(np.float32))
        npy = os.path.join(out_dir, f"{stem}_{short}.npy")
        png = os.path.join(out_dir, f"{stem}_{short}.png")
        write_atomic(npy, buf.getvalue())
        write_atomic(png, png_gray8(np.clip(np.round(arr * scale), 0, 255)))
        written += [npy, png]
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="photos (JPEG/PNG/BMP/GIF)")
    p.add_argument("--server", default="http://localhost:8501", help="TF Serving REST address")
    p.add_argument("--model", default="blur_estimator", help="servable name")
    p.add_argument("--version", type=int, default=None, help="model version (default: latest)")
    p.add_argument("--signature", default="serving_default")
    p.add_argument("--out_dir", default=".", help="where to write the maps")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    args = p.parse_args(argv)
    url = predict_url(args.server, args.model, args.version)
    failed = []
    for path in args.images:
        try:
            maps = request_maps(url, upright_bytes(path), args.signature, args.timeout)
            stem = os.path.splitext(os.path.basename(path))[0]
            written = save_maps(maps, args.out_dir, stem)
            summary = ""
            if "sigma_px" in maps:
                s = maps["sigma_px"]
                summary = f"sigma {s.min():.2f}..{s.max():.2f} px (mean {s.mean():.2f})"
            print(f"{path}: {maps[next(iter(maps))].shape[1]}x{maps[next(iter(maps))].shape[0]} "
                  f"{summary} -> {', '.join(written)}")
        except (OSError, RuntimeError) as e:
            failed.append(path)
            print(f"{path}: FAILED: {e}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(args.images)} photos failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
