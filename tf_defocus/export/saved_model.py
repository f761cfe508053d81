"""Export a tf_defocus inference model as a TF Serving SavedModel.

Layout: ``OUT/<model_name>/<version>/`` (``saved_model.pb``, ``variables/``,
``assets.extra/tf_serving_warmup_requests``, ``tf_defocus.json``). Signatures:

* ``serving_default``: ``image_bytes`` tf.string (N,) encoded JPEG, PNG (8/16 bit), BMP, GIF
  (first frame) or WebP (over REST: ``{"instances": [{"b64": "..."}]}``) -> ``sigma_px``
  (N,H,W,1) blur sigma [px] and ``focus`` (N,H,W,1) = 1 - sigma/7 (dof_weight kind: ``focus``
  only). Any image size up to the limit; all images of one request must share it. At most
  ``max_pixels`` pixels per request (all its images together; default
  ``graph.DEFAULT_MAX_PIXELS`` = 4096 x 4096, recorded as ``max_pixels`` in
  ``tf_defocus.json``): the sizes are read from the image headers and a larger request is
  refused with InvalidArgument before anything is decoded. An empty request, an unknown format
  or a corrupt image also give InvalidArgument. JPEGs are decoded with the accurate integer
  DCT, as OpenCV (and so ``tf_defocus.predict``) decodes them.
* ``serve``: ``image`` float32 (N,H,W,3) RGB [0,1], H and W unknown -> the same outputs. Sizes
  that are not multiples of 16 are edge-replicated inside the graph and cropped back.

The version directory is written under a temporary name and renamed, so TF Serving never loads
a half-written version.
"""

from pathlib import Path

from tf_defocus import __version__, artifacts, model_kinds
from tf_defocus.export import graph, warmup
from tf_defocus.models.layers import suggested_tile_size
from tf_defocus.export.model_io import (ExportError, check_inference_model, export_friendly,
                                        load_inference_model, staged_directory)


def write_serving_archive(model, kind, path, image_shape=(None, None, None), include_bytes=True,
                          tflite=False, max_pixels=graph.DEFAULT_MAX_PIXELS):
    """Write a SavedModel at ``path`` with the ``serve`` endpoint (input ``image`` float32 of
    shape ``image_shape + (3,)``, i.e. (N, H, W) or fixed) and, if ``include_bytes``, the
    ``serving_default`` bytes endpoint (at most ``max_pixels`` pixels per request).
    ``tflite``: apply the TFLite-only graph rewrites (``tf_defocus.export.rewrite``). No
    ModelInfo, no warm-up (see ``export_saved_model``)."""
    import keras
    import tensorflow as tf

    model = export_friendly(model, tflite=tflite)
    predict = graph.make_predict_fn(model, kind)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        graph.SERVE_SIGNATURE, predict,
        input_signature=[tf.TensorSpec(list(image_shape) + [3], tf.float32, name=graph.IMAGE_INPUT)])
    if include_bytes:
        archive.add_endpoint(
            graph.BYTES_SIGNATURE, graph.make_bytes_fn(predict, _check_max_pixels(max_pixels)),
            input_signature=[tf.TensorSpec([None], tf.string, name=graph.BYTES_INPUT)])
    archive.write_out(str(path), verbose=False)


def _check_max_pixels(max_pixels):
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ExportError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return max_pixels


def saved_model_info(kind, version=1, source_model="", max_pixels=graph.DEFAULT_MAX_PIXELS,
                     tile_size=None):
    """The ModelInfo written as ``<version dir>/tf_defocus.json`` (tile_size: the model's
    suggested tile [px], ``models.layers.suggested_tile_size``)."""
    multiple = model_kinds.spec(kind).size_multiple
    return artifacts.model_info(
        kind, artifacts.FORM_SIGNATURE, input_size=None,
        normalisation=(f"signature '{graph.SERVE_SIGNATURE}': input '{graph.IMAGE_INPUT}' float32 "
                       f"RGB in [0,1], NHWC, any H/W (edge-padded to a multiple of "
                       f"{multiple} inside); signature '{graph.BYTES_SIGNATURE}': input "
                       f"'{graph.BYTES_INPUT}' tf.string (N,) encoded {graph.BYTES_FORMATS} "
                       f"images of one size, at most {max_pixels} pixels per request (all "
                       f"images together; larger requests are refused before decoding)"),
        quantization="none", version=int(version),
        source_model=str(source_model), tf_defocus_version=__version__,
        max_pixels=int(max_pixels), tile_size=tile_size)


def _check_name_version(model_name, version):
    if not model_name or any(c in model_name for c in "/\\") or model_name.startswith("."):
        raise ExportError(f"bad model name {model_name!r}: need a plain directory name")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be a positive integer (TF Serving loads integer "
                          f"version directories), got {version!r}")


def export_saved_model(model, out_dir, model_name=None, version=1, overwrite=False,
                       source_model="", warmup_requests=True, extra_files=None,
                       max_pixels=graph.DEFAULT_MAX_PIXELS):
    """Export ``model`` (a keras inference model or a ``.keras`` path) for TF Serving.

    Writes ``out_dir/<model_name>/<version>/`` (model_name defaults to the model's name,
    ``blur_estimator`` or ``dofnet``) and returns that Path. Refuses an existing version
    directory unless ``overwrite``. ``warmup_requests``: True (default requests), False, or a
    list of (signature_name, {input: array}). ``extra_files``: {file name: text} written into
    the version directory (e.g. the CLI's config JSON). ``max_pixels``: the bytes signature's
    limit per request (pixels of all its images together; about 160 bytes of memory per pixel
    for the full-width network), refused from the headers before decoding.
    """
    if isinstance(model, (str, Path)):
        source_model = source_model or str(model)
        model, kind, _ = load_inference_model(model)
    else:
        kind = check_inference_model(model)
    model_name = model_name or model.name
    _check_name_version(model_name, version)
    _check_max_pixels(max_pixels)
    final = Path(out_dir) / model_name / str(version)
    with staged_directory(final, overwrite=overwrite) as tmp:
        write_serving_archive(model, kind, tmp, max_pixels=max_pixels)
        if warmup_requests:
            reqs = warmup.default_warmup_requests() if warmup_requests is True else warmup_requests
            warmup.write_warmup_requests(tmp, model_name, reqs)
        artifacts.write_info(tmp, saved_model_info(kind, version, source_model, max_pixels,
                                                   suggested_tile_size(model)))
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return final
