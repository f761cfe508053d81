"""Run a saved defocus model on photos of any size: ``load_estimator(path).predict(image)``.

Three artifact formats (``tf_defocus.artifacts``):

* ``.keras`` inference model; its name gives the kind (``blur_estimator`` -> ``defocus``,
  ``dofnet`` -> ``dof_weight``); output (N,H,W,1) sigma/7 or focus weight;
* SavedModel directory with a ``serve`` signature: float32 (N,H,W,3) RGB [0,1] -> dict
  ``sigma_px`` and ``focus`` (N,H,W,1) (``dof_weight`` kind: ``focus`` only); kind from
  ``<dir>/tf_defocus.json``;
* ``.tflite`` file run with LiteRT (``ai_edge_litert``); sidecar ``<stem>.json`` gives the kind,
  a fixed ``input_size`` (then tiles are that size), normalisation and quantization.

Any image size: the image is edge-replicated up to a multiple of 16 (and to the fixed input size
of a fixed-size model), cut into overlapping tiles whose starts are multiples of 16 (so every
tile sees the same pooling grid as the whole image; tiles are at most ``tile_size`` and shrunk
evenly so the last one does not overhang), each tile's map is weighted by a
raised-cosine ramp across the overlap with its neighbours (the weights of two neighbours sum
to one), accumulated, and cropped back to the input size. Memory is bounded by the tile size.

Default overlap (receptive-field argument): DMENet's output at a pixel depends on a
theoretical window of about 370 px (VGG19 to conv5_4 alone: 252 px; decoder and 7 residual
blocks add ~120 px), but the effective receptive field of such a network is far narrower and
concentrated at the centre. A tile pixel within ``d`` px of a cut has its context truncated at
``d``; the raised-cosine window gives that pixel weight ``sin^2(pi d / 2 o)`` so its error only
counts where ``d`` is a sizeable fraction of the overlap ``o``. ``DEFAULT_TILE_OVERLAP = 128``
px (8 cells of the 1/16 bottleneck) keeps tiled and whole-image maps within MAE 0.01 in sigma/7
units (``tests/test_inference.py``, ``benchmarks/inference.py`` measure this).
"""

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from tf_defocus import artifacts, litert, model_kinds
from tf_defocus.config import Section, setting
from tf_defocus.imageio import to_rgb_float

TILE_MULTIPLE = model_kinds.MAX_SIZE_MULTIPLE
"""Tile sizes, overlaps and starts are multiples of this [px] (16: every kind's size multiple
divides it, so every tile sees the whole image's pooling grid)."""
DEFAULT_TILE_SIZE = 768
"""Largest tile side [px]. A full-width (1.0) DMENet tile of 768^2 peaks near 1.1 GB of
activations (1024^2: 2.3 GB). Tiles are shrunk evenly to cover the photo (``balanced_tile``):
with the 128 px overlap a 24 MP photo runs 70 tiles of 688x720, 1.2x its pixels."""
DEFAULT_TILE_OVERLAP = 128
"""Overlap of neighbouring tiles [px] (see the module docstring)."""
DEFAULT_TFLITE_THREADS = 2


@dataclasses.dataclass(frozen=True)
class RunSettings(Section):
    """How ``load_estimator`` runs a model, as config settings (predict and evaluate derive
    from it): tiles [px] and CPU threads."""
    tile_size: int = setting(DEFAULT_TILE_SIZE, f"Tile side [px], multiple of {TILE_MULTIPLE}; "
                             "0 = whole image in one pass (memory grows with the image).")
    tile_overlap: int = setting(DEFAULT_TILE_OVERLAP, "Overlap of neighbouring tiles [px], "
                                f"multiple of {TILE_MULTIPLE}, at most tile_size / 2.")
    threads: int = setting(0, "CPU threads for TF / TFLite (0 = default; TFLite: "
                              f"{DEFAULT_TFLITE_THREADS}).", low=0)

    def check(self):
        try:
            check_tiling(self.tile_size, self.tile_overlap)
        except ValueError as e:
            raise ValueError(f"--{e}") from None


class ModelLoadError(ValueError):
    """A path that is not a usable tf_defocus model (message names the file)."""


# ----------------------------------------------------------------------------- tiling

def check_tiling(tile_size, tile_overlap, multiple=TILE_MULTIPLE):
    """Validate tile parameters [px]; ``tile_size`` 0 means no tiling (whole image)."""
    for name, v in (("tile_size", tile_size), ("tile_overlap", tile_overlap)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer number of pixels, got {v!r}")
        if v % multiple:
            raise ValueError(f"{name} must be a multiple of {multiple} px (the network downsamples "
                             f"by {multiple}), got {v}")
    if tile_size:
        if tile_size < 2 * multiple:
            raise ValueError(f"tile_size must be at least {2 * multiple} px, got {tile_size}")
        if 2 * tile_overlap > tile_size:
            raise ValueError(f"tile_overlap ({tile_overlap}) must be at most half of tile_size "
                             f"({tile_size})")


def tile_starts(length, tile, step):
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with stride ``step``;
    the last tile ends at ``length``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def balanced_tile(length, tile_max, overlap, multiple=TILE_MULTIPLE):
    """Tile length [px] along an axis of ``length`` px: the fewest tiles of at most
    ``tile_max`` px (overlapping by ``overlap``) that cover the axis, shrunk evenly to the
    smallest multiple of ``multiple`` that still covers it. E.g. 1024 px with tiles of at most
    768 and overlap 128: two tiles of 576 px (1.1x the pixels) instead of two of 768 (1.5x)."""
    if length <= tile_max:
        return length
    n = math.ceil((length - overlap) / (tile_max - overlap))
    tile = _round_up((length + (n - 1) * overlap) / n, multiple)
    return min(tile, tile_max, length)


def _ramp(n):
    """Raised-cosine ramp of length n rising from ~0 to ~1: 0.5 - 0.5 cos(pi (i + .5) / n)."""
    i = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / n)


def _axis_window(starts, tile, index):
    """1-D blending weights of tile ``index`` along one axis, ramps over the true overlaps."""
    w = np.ones(tile, np.float64)
    s = starts[index]
    if index > 0:
        ov = starts[index - 1] + tile - s
        if ov > 0:
            w[:ov] *= _ramp(ov)
    if index + 1 < len(starts):
        ov = s + tile - starts[index + 1]
        if ov > 0:
            w[tile - ov:] *= _ramp(ov)[::-1]
    return w


def _edge_crop(img, y0, x0, th, tw):
    """(th, tw, 3) window of ``img`` starting at (y0, x0), which may reach outside the image;
    outside pixels replicate the nearest edge pixel."""
    h, w = img.shape[:2]
    if 0 <= y0 and y0 + th <= h and 0 <= x0 and x0 + tw <= w:
        return np.ascontiguousarray(img[y0:y0 + th, x0:x0 + tw])
    rows = np.clip(np.arange(y0, y0 + th), 0, h - 1)
    cols = np.clip(np.arange(x0, x0 + tw), 0, w - 1)
    return img[rows[:, None], cols[None, :]]


def _as_rgb_float(image):
    """Model input (H, W, 3) float32 in [0, 1]; a float32 RGB array already in range is used
    as is (no copy: a 24 MP photo is 288 MB), anything else goes through ``to_rgb_float``."""
    a = np.asarray(image)
    if a.dtype == np.float32 and a.ndim == 3 and a.shape[-1] == 3 and min(a.shape[:2]) > 0:
        lo, hi = float(a.min()), float(a.max())   # NaN propagates into min/max
        if np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0:
            return a
    return to_rgb_float(a, "image")


def _round_up(v, m):
    return int(math.ceil(v / m) * m)


# ----------------------------------------------------------------------------- backends

class _Backend:
    """Runs the network on one batch: float32 (N,h,w,3) RGB [0,1] -> float32 (N,h,w) in the
    kind's native units (defocus: sigma/7; dof_weight: focus weight in [0,1])."""
    kind = artifacts.KIND_DEFOCUS
    fixed_size = None        # (h, w) or None
    size_multiple = model_kinds.DEFOCUS.size_multiple
    info = None

    def __call__(self, batch):
        raise NotImplementedError


def _check_io(path, in_shape, out_shapes):
    """Input must be (N,H,W,3); every output (N,H,W,1)."""
    in_shape = tuple(in_shape)
    if len(in_shape) != 4 or in_shape[-1] != 3:
        raise ModelLoadError(f"{path}: not a defocus model: input shape {in_shape}, expected "
                             f"(N, H, W, 3) RGB")
    for shape in out_shapes:
        shape = tuple(shape)
        if len(shape) != 4 or shape[-1] != 1:
            raise ModelLoadError(f"{path}: not a defocus model: output shape {shape}, expected "
                                 f"(N, H, W, 1)")


def _fixed_hw(shape):
    h, w = shape[1], shape[2]
    if h is None or w is None or h < 0 or w < 0:
        return None
    return int(h), int(w)


class _KerasBackend(_Backend):
    def __init__(self, path):
        import tensorflow as tf
        from tf_defocus.export.model_io import load_inference_model
        try:
            model, kind, info = load_inference_model(path)
        except (ValueError, OSError) as e:   # ExportError is a ValueError; it names the file
            raise ModelLoadError(str(e)) from e
        self.kind = kind
        self.model = model
        self.info = info
        self.fixed_size = _fixed_hw(model.inputs[0].shape)
        self.size_multiple = model_kinds.spec(kind).size_multiple

        def run(x):
            y = model(x, training=False)
            if isinstance(y, dict):
                y = next(iter(y.values()))
            return y

        self._fn = tf.function(run, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32)])

    def __call__(self, batch):
        return np.asarray(self._fn(batch))[..., 0]


class _SavedModelBackend(_Backend):
    def __init__(self, path):
        import tensorflow as tf
        info = artifacts.read_info(path)
        if not (Path(path) / "saved_model.pb").is_file():
            raise ModelLoadError(f"{path}: not a SavedModel directory (no saved_model.pb)")
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"{path}: could not load SavedModel: {e}") from e
        if "serve" not in loaded.signatures:
            raise ModelLoadError(f"{path}: SavedModel has no 'serve' signature (has "
                                 f"{sorted(loaded.signatures)}); export it with tf_defocus.export")
        fn = loaded.signatures["serve"]
        _, kwargs = fn.structured_input_signature
        if len(kwargs) != 1:
            raise ModelLoadError(f"{path}: 'serve' signature must take one image input, takes "
                                 f"{sorted(kwargs)}")
        (self._input_name, spec), = kwargs.items()
        if spec.dtype != tf.float32:
            raise ModelLoadError(f"{path}: 'serve' input is {spec.dtype.name}, expected float32")
        outs = fn.structured_outputs
        names = set(outs)
        kind = info.kind if info is not None else model_kinds.kind_of_outputs(names)
        need = model_kinds.spec(kind).map_output if kind is not None else None
        if kind is None or need not in names:
            raise ModelLoadError(f"{path}: 'serve' outputs {sorted(names)} are not a tf_defocus "
                                 f"model's (expected 'sigma_px' and 'focus', or 'focus' only)")
        _check_io(path, spec.shape.as_list(), [outs[need].shape.as_list()])
        self._loaded = loaded     # keep the resources alive
        self._fn = fn
        self._out = need
        self._spec = model_kinds.spec(kind)
        self.kind = kind
        self.info = info
        self.fixed_size = _fixed_hw(spec.shape.as_list())
        if info is not None:
            self.size_multiple = info.size_multiple or self.size_multiple

    def __call__(self, batch):
        import tensorflow as tf
        y = np.asarray(self._fn(**{self._input_name: tf.constant(batch)})[self._out])[..., 0]
        return self._spec.native_from_signature(y)


class _TFLiteBackend(_Backend):
    def __init__(self, path, threads):
        from ai_edge_litert.interpreter import Interpreter
        info = artifacts.read_info(path)
        try:
            interp = Interpreter(model_path=str(path), num_threads=int(threads))
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"{path}: not a readable TFLite model: {e}") from e
        self.interp = interp
        self.info = info
        sigs = interp.get_signature_list()
        self._runner = None
        if len(sigs) >= 1:
            key = "serve" if "serve" in sigs else sorted(sigs)[0]
            runner = interp.get_signature_runner(key)
            in_details = runner.get_input_details()
            out_details = runner.get_output_details()
            if len(in_details) != 1:
                raise ModelLoadError(f"{path}: signature {key!r} must take one image input, takes "
                                     f"{sorted(in_details)}")
            (self._input_name, self._in), = in_details.items()
            outs = out_details
            self._runner = runner
        else:
            interp.allocate_tensors()
            ins = interp.get_input_details()
            if len(ins) != 1:
                raise ModelLoadError(f"{path}: expected one input tensor, got {len(ins)}")
            self._in = ins[0]
            outs = {d["name"]: d for d in interp.get_output_details()}
        names = set(outs)
        has = lambda key: [n for n in names if n == key or key in n]
        if info is not None:
            kind = info.kind
        elif has(model_kinds.DEFOCUS.map_output):
            kind = artifacts.KIND_DEFOCUS
        else:
            raise ModelLoadError(f"{path}: no sidecar {artifacts.info_path(path).name} and outputs "
                                 f"{sorted(names)} do not say what the model computes")
        self._spec = model_kinds.spec(kind)
        want = self._spec.map_output
        match = has(want)
        if not match and len(names) == 1 and info is not None and info.outputs[:1] == (want,):
            match = list(names)
        if not match:
            raise ModelLoadError(f"{path}: outputs {sorted(names)} lack {want!r}; not a tf_defocus "
                                 f"{kind} model")
        self._out_name = match[0]
        self._out = outs[self._out_name]
        self.kind = kind
        _check_io(path, self._in["shape_signature"], [self._out["shape_signature"]])
        if info is not None and info.input_size:
            self.fixed_size = tuple(int(v) for v in info.input_size)
        else:
            self.fixed_size = _fixed_hw(list(self._in["shape_signature"]))
        if info is not None:
            self.size_multiple = info.size_multiple or self.size_multiple
        self._shape = None

    def __call__(self, batch):
        x = litert.tflite_input(batch, self._in)
        if self._runner is not None:
            y = self._runner(**{self._input_name: x})[self._out_name]
        else:
            if self._shape != x.shape:
                self.interp.resize_tensor_input(self._in["index"], list(x.shape))
                self.interp.allocate_tensors()
                self._shape = x.shape
            self.interp.set_tensor(self._in["index"], x)
            self.interp.invoke()
            y = self.interp.get_tensor(self._out["index"])
        return self._spec.native_from_signature(litert.tflite_output(y, self._out)[..., 0])


# ----------------------------------------------------------------------------- estimator

@dataclasses.dataclass
class Estimator:
    """A loaded model plus tiling settings.

    ``kind`` is ``defocus`` (maps in sigma px) or ``dof_weight`` (focus weight, no blur unit).
    ``tile_size`` 0 = whole image in one pass; ``fixed_size`` (h, w) for fixed-input models
    (then tiles are that size regardless of ``tile_size``).
    """
    backend: _Backend
    path: str = ""
    tile_size: int = DEFAULT_TILE_SIZE
    tile_overlap: int = DEFAULT_TILE_OVERLAP

    def __post_init__(self):
        check_tiling(self.tile_size, self.tile_overlap)

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
        (padded_h, padded_w))."""
        hp, wp = self._padded_size(height, width)
        th, tw = self._tile_hw(hp, wp)
        step_y, step_x = th - self._overlap(th), tw - self._overlap(tw)
        return (th, tw), tile_starts(hp, th, step_y), tile_starts(wp, tw, step_x), (hp, wp)

    def _padded_size(self, h, w):
        m = self.backend.size_multiple or 1
        hp, wp = _round_up(h, m), _round_up(w, m)
        if self.fixed_size is not None:
            hp, wp = max(hp, self.fixed_size[0]), max(wp, self.fixed_size[1])
        return hp, wp

    def _tile_hw(self, hp, wp):
        if self.fixed_size is not None:
            return self.fixed_size
        if not self.tile_size:
            return hp, wp
        return (balanced_tile(hp, self.tile_size, self.tile_overlap),
                balanced_tile(wp, self.tile_size, self.tile_overlap))

    def _overlap(self, tile):
        ov = self.tile_overlap
        if self.fixed_size is not None:   # fixed tiles need not be multiples of 16
            ov = min(ov, tile // 2)
        return ov

    def predict_native(self, image, progress=None):
        """Map in the model's native units, float32 (H, W): sigma/7 (defocus) or focus weight.

        image: (H,W,3) RGB / (H,W) gray / (H,W,4) RGBA, uint8, uint16 or float in [0,1].
        progress: optional callable(done_tiles, total_tiles).
        """
        img = _as_rgb_float(image)
        h, w = img.shape[:2]
        (th, tw), ys, xs, (hp, wp) = self.tiles(h, w)
        top = (hp - h) // 2      # the padded image is centred on the photo
        left = (wp - w) // 2
        total = len(ys) * len(xs)
        if total == 1:
            out = self.backend(_edge_crop(img, -top, -left, th, tw)[None])[0]
            if progress:
                progress(1, 1)
            return np.ascontiguousarray(out[top:top + h, left:left + w], dtype=np.float32)
        # Accumulate straight into photo-sized buffers: the padded image is never materialised,
        # each tile is cut (with edge replication where it leaves the photo) on demand.
        acc = np.zeros((h, w), np.float32)
        wsum = np.zeros((h, w), np.float32)
        done = 0
        for iy, y0 in enumerate(ys):
            wy = _axis_window(ys, th, iy).astype(np.float32)
            for ix, x0 in enumerate(xs):
                wx = _axis_window(xs, tw, ix).astype(np.float32)
                pred = self.backend(_edge_crop(img, y0 - top, x0 - left, th, tw)[None])[0]
                # the tile's rows/cols that fall inside the photo
                r0, r1 = max(0, top - y0), min(th, top + h - y0)
                c0, c1 = max(0, left - x0), min(tw, left + w - x0)
                win = np.outer(wy[r0:r1], wx[c0:c1])
                dst = np.s_[y0 - top + r0:y0 - top + r1, x0 - left + c0:x0 - left + c1]
                acc[dst] += pred[r0:r1, c0:c1] * win
                wsum[dst] += win
                done += 1
                if progress:
                    progress(done, total)
        acc /= wsum
        return acc

    def predict(self, image, progress=None):
        """Defocus map: float32 sigma [px], shape (H, W) of the input (see ``predict_native``)."""
        spec = model_kinds.spec(self.kind)
        if not spec.has_sigma:
            raise ValueError(f"{self.path or 'model'}: a {self.kind} model outputs a focus weight "
                             f"with no blur unit; use predict_focus()")
        return spec.sigma_px(np.clip(self.predict_native(image, progress), 0.0, 1.0))

    def predict_focus(self, image, progress=None):
        """Focus map in [0, 1] (1 = in focus), float32 (H, W): 1 - sigma/7 for a defocus model,
        the weight map for a dof_weight model."""
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


def _saved_model_dir(p):
    """The SavedModel to load for directory ``p``: ``p`` itself, its highest integer version
    subdirectory (TF Serving layout ``<model_name>/<version>/``), or that of its only model
    subdirectory (an export root ``OUT/`` holding ``<model_name>/<version>/``); None if there is
    none (e.g. a training model_dir, loaded as its ``.keras`` inference model)."""
    def latest(d):
        if (d / "saved_model.pb").is_file():
            return d
        versions = [v for v in d.iterdir() if v.is_dir() and v.name.isdigit()
                    and (v / "saved_model.pb").is_file()]
        return max(versions, key=lambda v: int(v.name)) if versions else None

    found = latest(p)
    if found is None:
        subs = [latest(d) for d in p.iterdir() if d.is_dir()]
        subs = [d for d in subs if d is not None]
        if len(subs) == 1:
            found = subs[0]
    return found


def set_tf_threads(threads):
    """Limit TensorFlow's intra/inter-op thread pools to ``threads`` (inter-op: at most 2) for
    the whole process; None or 0 leaves TF's defaults. Call it before TF executes anything
    (later calls are ignored). ``load_estimator`` never does: the predict / evaluate CLIs call
    it for ``--threads``."""
    if not threads:
        return
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(min(2, int(threads)))
    except RuntimeError:
        pass  # TF already initialised; keep its pools


def default_model_path():
    """Path of the built-in default model (``tf_defocus/weights/default_model.keras``);
    ModelLoadError if this installation lacks it."""
    from tf_defocus.weights import DEFAULT_MODEL
    if not DEFAULT_MODEL.is_file():
        raise ModelLoadError(f"{DEFAULT_MODEL}: the built-in default model is missing from this "
                             f"installation; pass a model path (--model=PATH) or use a "
                             f"training-free method (--method=hifst or --method=lbp)")
    return DEFAULT_MODEL


def load_estimator(path=None, tile_size=DEFAULT_TILE_SIZE, tile_overlap=DEFAULT_TILE_OVERLAP,
                   threads=None):
    """Load a ``.keras`` file, SavedModel directory or ``.tflite`` file as an ``Estimator``;
    ``path=None`` loads the built-in default model (``default_model_path()``).

    tile_size, tile_overlap: px, multiples of 16 (tile_size 0 = whole image in one pass).
    threads: threads of a ``.tflite`` model's LiteRT interpreter (default 2). TensorFlow's
    process-wide thread pools (``.keras`` / SavedModel) are not touched: set them with
    ``set_tf_threads`` first.
    Raises ModelLoadError (naming the path) for anything that is not a tf_defocus model, and
    ValueError for bad tiling parameters, before any inference work.
    """
    check_tiling(tile_size, tile_overlap)
    if path is None:
        path = default_model_path()
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    if p.is_dir():
        sm = _saved_model_dir(p)
        backend = _SavedModelBackend(sm) if sm is not None else _KerasBackend(p)
    elif p.suffix == ".keras":
        backend = _KerasBackend(p)
    elif p.suffix == ".tflite":
        backend = _TFLiteBackend(p, threads or DEFAULT_TFLITE_THREADS)
    else:
        raise ModelLoadError(f"{path}: unknown model format {p.suffix!r}; expected a .keras file, "
                             f"a SavedModel directory or a .tflite file")
    return Estimator(backend=backend, path=os.fspath(path), tile_size=tile_size,
                     tile_overlap=tile_overlap)
