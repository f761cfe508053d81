"""One labelled synthetic defocus image: the single entry point of the data engine.

``synthesize(seed, width, height, psf="gaussian", source=None)`` returns a ``Sample``:

* ``image``: float32 (H, W, 3) sRGB in [0, 1], the defocused image;
* ``sigma_px``: float32 (H, W), the Gaussian-equivalent blur sigma [px] of every pixel
  (0 = in focus, at most ``(max_coc - 1) / 4`` = 7 px by default);
* ``mask``: float32 (H, W), 1 = blurred (``sigma_px > mask_threshold_px``), 0 = sharp;
* ``camera``: JSON-safe dict (thin-lens parameters in mm, PSF settings, seed, source).

``source=None`` renders a built-in procedural dead-leaves RGB-D scene; otherwise ``source`` is an
``(image, depth_mm)`` pair (sRGB float32 (H, W, 3) in [0, 1] or uint8, depth [mm]) from
``tf_defocus.data.rgbd``. The same arguments always give the same output bytes: the seed is split
(``numpy.random.SeedSequence``) into independent streams for the scene, the camera and the
renderer, so ``psf="gaussian"`` and ``psf="disc"`` with one seed show the same scene and camera.

This module also holds the on-disk formats of generated data: ``write_syndof_sample`` (SYNDOF
layout; its ``blur_map`` codec lives in ``tf_defocus.data.readers``) and the TFRecord format:
``TFRECORD_SCHEMA`` (the one description of its features), ``tfrecord_example_from_encoded``
(writer) and ``parse_tfrecord`` (reader, used by ``tf_defocus.data.tfrecords``); see
``tf_defocus.generate`` for the full layout.
"""

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from tf_defocus import imageio
from tf_defocus.data import highlights as lights
from tf_defocus.data import optics, photos, procedural, readers, render, scenes
from tf_defocus.model_kinds import DEFAULT_MASK_THRESHOLD_PX   # the mask rule of the labels

SYNDOF_DIRS = ("image", "blur_map", "blur_map_binary", "meta")


@dataclasses.dataclass
class Sample:
    """One labelled image. image: float32 (H, W, 3) sRGB [0, 1]; sigma_px: float32 (H, W) [px];
    mask: float32 (H, W), 1 = blurred; camera: JSON-safe dict."""
    image: np.ndarray
    sigma_px: np.ndarray
    mask: np.ndarray
    camera: dict


def _streams(seed):
    if not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    scene, camera, renderer, crop = np.random.SeedSequence(int(seed)).spawn(4)
    return tuple(np.random.default_rng(s) for s in (scene, camera, renderer, crop))


def fit_source(image, depth_mm, width, height, rng):
    """Scale an RGB-D pair to cover (width, height) keeping its aspect, then crop at a random
    offset. Depth is resized with nearest neighbour (no invented depths at edges)."""
    h, w = depth_mm.shape
    if (w, h) == (width, height):
        return image, depth_mm
    scale = max(width / w, height / h)
    nw, nh = max(width, int(round(w * scale))), max(height, int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.resize(image, (nw, nh), interpolation=interp)
    depth_mm = cv2.resize(depth_mm, (nw, nh), interpolation=cv2.INTER_NEAREST)
    y0 = int(rng.integers(0, nh - height + 1))
    x0 = int(rng.integers(0, nw - width + 1))
    return (np.ascontiguousarray(image[y0:y0 + height, x0:x0 + width]),
            np.ascontiguousarray(depth_mm[y0:y0 + height, x0:x0 + width]))


SCENES = ("dead_leaves", "layered", "mixed")
MIXED_LAYERED_SHARE = 0.5
"""``scene="mixed"``: share of layered scenes; the rest are dead leaves, drawn per seed. Layered
scenes alone did not train (issue 11, docs/training/default_model/status.md): B at width 1/8 stayed
at the constant predictor's loss for 1,500 steps on them with either camera pipeline, while on
dead leaves with the same camera it fell 25% below it within 300 steps. Dead leaves teach the
visible blur; layered scenes teach smooth in-focus surfaces and layouts."""
MIXED_SMOOTH_LEAF_SHARE = 0.6
"""``scene="mixed"``: the dead leaves' ``smooth_share`` (smooth leaves at every depth). With
every leaf textured (the plain ``dead_leaves`` scenes) the third default-model run learnt "smooth
= blurred" from them again (docs/training/default_model/status.md); 0.6 makes about a quarter
of a sharp scene's pixels smooth (``benchmarks/smooth_share.py``), against 35% in the layered
scenes and 31% in real photos."""
ALL_IN_FOCUS_PROB = 0.1
"""Layered scenes: fraction rendered all in focus (largest CoC 1..1.5 px, so sigma <= 0.125)."""
SMOOTH_FOCUS_PROB = 0.3
"""Layered scenes with a large smooth surface: fraction focused on one of them."""


def check_focus_shares(all_in_focus, smooth_focus, names=("all_in_focus", "smooth_focus")):
    """ValueError unless the shares of layered scenes all in focus and focused on a smooth
    surface are >= 0 with a sum of at most 1 (``names``: how the message calls them)."""
    if not (0.0 <= float(all_in_focus) and 0.0 <= float(smooth_focus)
            and float(all_in_focus) + float(smooth_focus) <= 1.0):
        raise ValueError(f"{names[0]} and {names[1]} must be >= 0 with a sum of at most 1, got "
                         f"{float(all_in_focus):g} and {float(smooth_focus):g}")


def synthesize(seed, width, height, psf="gaussian", source=None, max_coc=optics.DEFAULT_MAX_COC_PX,
               mask_threshold_px=DEFAULT_MASK_THRESHOLD_PX, num_layers=None, scene="dead_leaves",
               isp="basic", photo_split="train", highlights=0.0, all_in_focus=ALL_IN_FOCUS_PROB,
               smooth_focus=SMOOTH_FOCUS_PROB):
    """Make one labelled defocused image (see the module docstring).

    seed: non-negative int. width, height: output size [px]; with a ``source`` either may be None
    to keep the source's size. psf: ``gaussian`` (SYNDOF domain) or ``disc`` (camera-like: aperture
    in linear light, sensor noise, JPEG). source: None (procedural) or ``(image, depth_mm)``.
    max_coc: largest circle of confusion [px] (29 -> sigma 7). mask_threshold_px: sigma [px]
    above which ``mask`` is 1. num_layers: CoC bins of the renderer (default 256).
    scene: procedural scene kind, ``dead_leaves`` (``procedural.py``), ``layered``
    (``scenes.py``: real-photo and smooth surfaces, planes, sky; ALL_IN_FOCUS_PROB of them all in
    focus, SMOOTH_FOCUS_PROB focused on a large smooth surface) or ``mixed`` (either, layered
    with probability MIXED_LAYERED_SHARE, drawn from the seed; its dead leaves have smooth
    leaves, MIXED_SMOOTH_LEAF_SHARE). isp: disc-PSF camera pipeline,
    ``basic`` (``render.sample_disc_options``) or ``varied`` (``render.sample_varied_options``:
    noise levels, tone curve, sharpening, downscaling from a larger render, JPEG quality).
    photo_split: photos textures come from (``photos.SPLITS``; layered scenes only).
    highlights: probability that a procedural scene gets point lights brighter than white
    (``highlights.point_lights``: bokeh when defocused; ``psf="disc"`` only). 0 leaves every
    scene as before (the lights draw from a sixth child of the seed).
    all_in_focus, smooth_focus: fractions of layered scenes rendered all in focus and focused on
    a large smooth surface (defaults ALL_IN_FOCUS_PROB, SMOOTH_FOCUS_PROB; sum at most 1). One
    camera draw u decides: all in focus if u < all_in_focus, else smooth focus if u <
    all_in_focus + smooth_focus, so the all-in-focus scenes of a smaller share stay all in
    focus under a larger one.
    """
    if psf not in render.PSFS:
        raise ValueError(f"psf must be one of {render.PSFS}, got {psf!r}")
    if scene not in SCENES:
        raise ValueError(f"scene must be one of {SCENES}, got {scene!r}")
    if isp not in render.ISP_PROFILES:
        raise ValueError(f"isp must be one of {render.ISP_PROFILES}, got {isp!r}")
    if not 0.0 <= float(highlights) <= 1.0:
        raise ValueError(f"highlights must be a probability in [0, 1], got {highlights!r}")
    if highlights and psf != "disc":
        raise ValueError("highlights need psf='disc' (lights brighter than white in linear light)")
    check_focus_shares(all_in_focus, smooth_focus)
    scene_rng, camera_rng, render_rng, crop_rng = _streams(seed)
    mixed = scene == "mixed"
    if mixed:
        # A fifth child of the seed: the four streams stay those of the chosen scene kind.
        pick = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(5)[4]).random()
        scene = "layered" if pick < MIXED_LAYERED_SHARE else "dead_leaves"
    disc = None
    if psf == "disc":
        disc = (render.sample_disc_options if isp == "basic" else render.sample_varied_options)(render_rng)
    focus_depth = None
    out_size = None
    if source is None:
        if width is None or height is None:
            raise ValueError("width and height are required for procedural scenes")
        if scene == "dead_leaves":
            image, depth = procedural.dead_leaves_scene(
                scene_rng, int(width), int(height),
                smooth_share=MIXED_SMOOTH_LEAF_SHARE if mixed else 0.0)
            source_name = "procedural"
        else:
            s = disc.render_scale if disc is not None else 1.0
            rw, rh = int(round(int(width) * s)), int(round(int(height) * s))
            if (rw, rh) != (int(width), int(height)):
                out_size = (int(width), int(height))
                max_coc = (max_coc - 1.0) * rw / int(width) + 1.0  # sigma cap scales with the image
            image, depth, hints = scenes.layered_scene(scene_rng, rw, rh, photos.library(photo_split))
            source_name = "layered"
            u = camera_rng.random()
            if u < all_in_focus:
                max_coc = float(camera_rng.uniform(1.01, 1.5))
            elif hints["smooth_depths_mm"] and u < all_in_focus + smooth_focus:
                d = hints["smooth_depths_mm"]
                focus_depth = float(d[int(camera_rng.integers(len(d)))])
    else:
        image, depth = source
        image = imageio.to_rgb_float(image, "source image")
        depth = np.asarray(depth, np.float32)
        if depth.shape != image.shape[:2]:
            raise ValueError(f"source depth {depth.shape} does not match image {image.shape[:2]}")
        if not np.all(np.isfinite(depth)) or float(depth.min()) <= 0:
            raise ValueError("source depth must be finite and > 0 mm everywhere")
        width = depth.shape[1] if width is None else int(width)
        height = depth.shape[0] if height is None else int(height)
        image, depth = fit_source(image, depth, width, height, crop_rng)
        source_name = "rgbd"
    camera = optics.sample_camera(depth, camera_rng, image_width_px=image.shape[1], max_coc=max_coc,
                                  focus_depth_mm=focus_depth)
    radiance = None
    if highlights and source is None:
        light_rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(6)[5])
        if light_rng.random() < highlights:
            radiance = lights.point_lights(light_rng, image.shape[0], image.shape[1])
    blurred, sigma, info = render.render_defocus(image, depth, camera, psf=psf, rng=render_rng,
                                                 num_layers=num_layers, disc=disc, return_info=True,
                                                 out_size=out_size, highlights=radiance)
    meta = camera.to_dict()
    if out_size is not None:
        max_coc = (max_coc - 1.0) * out_size[0] / image.shape[1] + 1.0
    meta.update(psf=psf, seed=int(seed), source=source_name, max_coc_px=float(max_coc),
                mask_threshold_px=float(mask_threshold_px), num_layers=info["num_layers"],
                min_depth_mm=float(depth.min()), max_depth_mm=float(depth.max()))
    if radiance is not None:
        meta["point_lights"] = True
    if disc is not None:
        meta["disc"] = disc.to_dict()
    mask = (sigma > mask_threshold_px).astype(np.float32)
    return Sample(image=blurred, sigma_px=sigma, mask=mask, camera=meta)


# ----------------------------------------------------------------------------- SYNDOF layout
def image_to_uint8(image):
    """float [0, 1] -> uint8 (round half up)."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def syndof_paths(out_dir, sample_id):
    """Paths of one sample in the SYNDOF layout: dict name -> Path."""
    out = Path(out_dir)
    return {"image": out / "image" / f"{sample_id}.png",
            "blur_map": out / "blur_map" / f"{sample_id}.png",
            "blur_map_binary": out / "blur_map_binary" / f"{sample_id}.png",
            "meta": out / "meta" / f"{sample_id}.json"}


def syndof_sample_complete(out_dir, sample_id):
    """True if every file of ``sample_id`` exists (``meta`` is written last)."""
    return all(p.is_file() for p in syndof_paths(out_dir, sample_id).values())


def write_syndof_sample(out_dir, sample_id, sample, extra_meta=None):
    """Write one ``Sample`` in the SYNDOF layout (each file atomically):

    ``image/<id>.png`` uint8 RGB; ``blur_map/<id>.png`` uint16 round(sigma*10) in 3 equal
    channels; ``blur_map_binary/<id>.png`` uint8 gray, 255 = blurred (mask 1), 0 = sharp;
    ``meta/<id>.json`` camera dict (+ ``extra_meta``), written last as the completion marker.
    Returns the meta dict written.
    """
    paths = syndof_paths(out_dir, sample_id)
    imageio.write_image(paths["image"], image_to_uint8(sample.image))
    imageio.write_image(paths["blur_map"], readers.encode_syndof_sigma(sample.sigma_px, "sigma10"))
    imageio.write_image(paths["blur_map_binary"],
                        np.where(np.asarray(sample.mask) > 0.5, 255, 0).astype(np.uint8))
    meta = {"id": str(sample_id), **sample.camera, **(extra_meta or {})}
    imageio.write_text(paths["meta"], json.dumps(meta, sort_keys=True) + "\n")
    return meta


def read_syndof_sigma(path):
    """Read a SYNDOF ``blur_map`` PNG (sigma*10 convention) -> sigma [px] float32 (H, W)."""
    data = np.fromfile(str(path), np.uint8) if Path(path).is_file() else None
    a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if a is None:
        raise imageio.ImageReadError(f"{path}: not a readable blur map")
    if a.dtype != np.uint16:
        raise imageio.ImageReadError(f"{path}: expected a 16-bit PNG, got {a.dtype}")
    return readers.syndof_sigma_from_array(a, "sigma10")


# ----------------------------------------------------------------------------- TFRecord
TFRECORD_SCHEMA = (
    # (feature, type, content) of the one ``tf.train.Example`` per image, in writing order.
    ("id", "bytes", "image id (utf-8)"),
    ("image", "bytes", "PNG, uint8 RGB, height x width"),
    ("sigma", "bytes", "raw little-endian float32, height * width values, row-major: sigma [px]"),
    ("mask", "bytes", "PNG, uint8 gray, 255 = blurred, 0 = sharp"),
    ("height", "int64", ""),
    ("width", "int64", ""),
    ("camera", "bytes", "JSON (same content as meta/<id>.json)"),
)
TFRECORD_PARSED = ("id", "image", "sigma", "height", "width")
"""The features ``parse_tfrecord`` reads (``id`` may be missing: it defaults to "")."""


def tfrecord_schema_text(indent="    "):
    """``TFRECORD_SCHEMA`` as an aligned table (one feature a line), for help texts."""
    return "".join(f"{indent}{name:<7} {kind:<7} {content}".rstrip() + "\n"
                   for name, kind, content in TFRECORD_SCHEMA)


def encode_png(array):
    """uint8/uint16 array (H, W) or RGB (H, W, 3) -> PNG bytes."""
    a = np.asarray(array)
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", a)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def encode_sample(sample):
    """Encode a ``Sample`` for TFRecord without TensorFlow: dict of ``image`` (PNG bytes),
    ``sigma`` (raw little-endian float32 bytes), ``mask`` (PNG bytes, 255 = blurred),
    ``height``, ``width``."""
    h, w = sample.sigma_px.shape
    return {"image": encode_png(image_to_uint8(sample.image)),
            "sigma": np.ascontiguousarray(sample.sigma_px, "<f4").tobytes(),
            "mask": encode_png(np.where(np.asarray(sample.mask) > 0.5, 255, 0).astype(np.uint8)),
            "height": int(h), "width": int(w)}


def tfrecord_example_from_encoded(sample_id, encoded, meta):
    """Serialized ``tf.train.Example`` from ``encode_sample`` output and a meta dict."""
    import tensorflow as tf  # lazy: only the TFRecord path needs TensorFlow

    def feature(kind, value):
        if kind == "bytes":
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    values = {**encoded, "id": str(sample_id).encode("utf-8"),
              "camera": json.dumps(meta, sort_keys=True).encode("utf-8")}
    feats = {name: feature(kind, values[name]) for name, kind, _ in TFRECORD_SCHEMA}
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def parse_tfrecord(serialized):
    """One serialized generator record -> (image float32 (H, W, 3) [0, 1], sigma (H, W, 1) px, id).

    A record whose PNG does not decode or whose sizes disagree fails with an error that
    carries its id. TF ops (works inside ``tf.data`` maps).
    """
    import tensorflow as tf
    dtypes = {"bytes": tf.string, "int64": tf.int64}
    optional = {"id": ""}   # name -> default value
    spec = {name: tf.io.FixedLenFeature([], dtypes[kind], default_value=optional.get(name))
            for name, kind, _ in TFRECORD_SCHEMA if name in TFRECORD_PARSED}
    f = tf.io.parse_single_example(serialized, spec)
    h, w = tf.cast(f["height"], tf.int32), tf.cast(f["width"], tf.int32)
    image = tf.io.decode_png(f["image"], channels=3, dtype=tf.uint8)
    sigma = tf.io.decode_raw(f["sigma"], tf.float32, little_endian=True)
    tf.debugging.assert_equal(tf.size(sigma), h * w, message="TFRecord sigma size != height * width")
    tf.debugging.assert_equal(tf.shape(image)[:2], tf.stack([h, w]),
                              message="TFRecord image size != height, width")
    image = tf.cast(image, tf.float32) / 255.0
    sigma = tf.reshape(sigma, tf.stack([h, w, 1]))
    return image, sigma, f["id"]
