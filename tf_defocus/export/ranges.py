"""Activation ranges for full-int8 TFLite: min/max calibration refined to minimum-MSE ranges.

TFLite's calibrator records each activation tensor's min and max over the representative images
and the quantizer spreads the 256 int8 levels over exactly that range. A handful of extreme
values then sets the step for every pixel: in DMENet's decoder a conv output spans about
[-25, 20] while most values lie within +-3. Each range is instead shrunk by the factor
``alpha`` (both ends, 0 stays inside) that minimises the mean squared quantize-dequantize
error of the tensor's calibration values; the few values outside are clipped. This is the
MSE range setting of e.g. Nagel et al., "A White Paper on Neural Network Quantization"
(arXiv:2106.08295, sec. 3.4). Each tensor's values are histogrammed over all pixels of all
calibration images (8192 bins, deterministic). Measured on the quickstart model at 512x512 it
cuts the int8 MAE against Keras from 0.0298 to 0.0229 sigma/7 (``benchmarks/export.py``).

Per-tensor MSE is not the network's error: rounding noise reaches every pixel of every
following layer, while clipping touches a few outliers that the next BatchNorm-scaled layers
barely use. The ``search`` setting therefore quantizes the model once per common extra factor
``gamma`` in ``GAMMAS`` (every refined range times ``gamma``; 1.0 = the MSE ranges) and keeps
the one whose outputs differ least from the float model on up to ``SEARCH_IMAGES`` calibration
images (``output_error``): a one-parameter version of loss-aware range search (Nahshan et al.,
"Loss Aware Post-training Quantization", arXiv:1911.07190). On the quickstart model it picks
0.6 and the MAE on other images drops to about 0.016 (numbers in ``export/DEPLOYMENT.md``).

How: TF's converter calls ``Calibrator.calibrate`` and then quantizes the calibrated model with
``mlir_quantize`` (``tensorflow/lite/python/lite.py``, ``_quantize``). ``refined_calibration``
wraps both for the duration of a conversion (``export.tf_hooks.converter_hooks``, the one module
that replaces TF internals, restoring them when the conversion ends); the calibrated flatbuffer holds a float model whose
tensors carry min/max, which LiteRT can run with every intermediate tensor kept, and which is
also the float reference of the search. If a future TF no longer calls these two functions,
the conversion fails loudly instead of silently falling back to min/max ranges.
"""

import contextlib
import warnings

import numpy as np

from tf_defocus.export.tf_hooks import converter_hooks
from tf_defocus.litert import opcode_name, tflite_input

ALPHAS = np.linspace(0.3, 1.0, 36)   # candidate range factors (1.0 = the calibrated min/max)
BINS = 8192                          # histogram bins over a calibrated range (<= 1/9 int8 step)
LEVELS = 255                         # int8 steps across a tensor's range
# Common extra shrink factors tried on top of the per-tensor minimum-MSE ranges, judged by the
# quantized model's output error on calibration images (``refined_calibration``).
GAMMAS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SEARCH_IMAGES = 8                    # calibration images that judge the factors


def quantization_mse(x, lo, hi):
    """Mean squared error [x units^2] of quantizing ``x`` uniformly on [lo, hi] with 255 steps
    (values outside clipped), as TFLite's asymmetric int8 activations do."""
    x = np.asarray(x, np.float64)
    return float(np.mean(np.square(_quantize(x, lo, hi) - x)))


def histogram(x, lo, hi, bins=BINS):
    """Counts of ``x`` in ``bins`` equal bins over [lo, hi] (values outside go to the end bins)."""
    if hi <= lo:
        return np.bincount(np.zeros(np.size(x), np.int64), minlength=bins)
    idx = ((np.asarray(x, np.float64).ravel() - lo) * (bins / (hi - lo))).astype(np.int64)
    return np.bincount(np.clip(idx, 0, bins - 1), minlength=bins)


def best_alpha(counts, lo, hi, alphas=ALPHAS):
    """The factor in ``alphas`` whose range [alpha*lo, alpha*hi] quantizes the values of the
    histogram ``counts`` (equal bins over [lo, hi], values at the bin centres) with least mean
    squared error; ties go to the wider range."""
    centres = lo + (np.arange(len(counts)) + 0.5) * ((hi - lo) / len(counts))
    weights = counts / max(counts.sum(), 1)
    errors = [float(np.sum(weights * np.square(_quantize(centres, a * lo, a * hi) - centres)))
              for a in alphas]
    best = min(errors)
    return float(max(a for a, e in zip(alphas, errors) if e <= best + 1e-12 * best))


def _quantize(x, lo, hi):
    step = (hi - lo) / LEVELS
    if step <= 0:
        return np.zeros_like(x)
    return np.clip(np.round((x - lo) / step), 0, LEVELS) * step + lo


# Ops whose int8 output shares its input's scale (TFLite 8-bit spec): their output range is
# the (union of the) refined input range(s), so no requantization is inserted.
SAME_SCALE_OPS = frozenset({"STRIDED_SLICE", "SLICE", "CONCATENATION", "PAD", "PADV2",
                            "MIRROR_PAD", "RESHAPE", "BROADCAST_TO", "MAX_POOL_2D", "SQUEEZE",
                            "EXPAND_DIMS"})
# Ops with a fixed int8 output quantization in the TFLite 8-bit spec: LOGISTIC scale 1/256,
# zero point -128; TANH scale 1/128, zero point 0 (https://ai.google.dev/edge/litert/models/
# quantization_spec).
FIXED_RANGE_OPS = {"LOGISTIC": (0.0, 255.0 / 256.0), "TANH": (-1.0, 127.0 / 128.0)}
# Elementwise ops that, with a scalar constant, map the input range affinely; their output
# range is the image of the input's, so requantizing is (nearly) exact and outputs such as
# ``sigma_px = 7 * y`` are never clipped.
SCALAR_OPS = {"MUL": lambda x, c, first: x * c, "ADD": lambda x, c, first: x + c,
              "SUB": lambda x, c, first: x - c if first else c - x}


def _range(tensor):
    q = tensor.quantization
    if q is None or q.min is None or len(q.min) != 1:
        return None
    return min(float(q.min[0]), 0.0), max(float(q.max[0]), 0.0)


def _scalar_constant(model, tensor_index):
    """The value of a float32 scalar constant tensor, else None."""
    t = model.subgraphs[0].tensors[tensor_index]
    data = model.buffers[t.buffer].data if t.buffer > 0 else None
    if data is None or int(np.prod(t.shape if t.shape is not None else [])) != 1:
        return None
    values = np.frombuffer(bytes(data), np.float32)
    return float(values[0]) if values.size == 1 else None


def range_plan(model):
    """How each stats-carrying tensor of subgraph 0 gets its range, in execution order:
    ``refine`` (list): outputs of computing ops, minimum-MSE; ``derive`` (dict output index ->
    function(ranges) -> (lo, hi)): SAME_SCALE_OPS take the union of their inputs' ranges,
    FIXED_RANGE_OPS their fixed range, SCALAR_OPS the affine image of their input's range.
    Model inputs keep their calibrated range (the uint8 image must not be clipped)."""
    subgraph = model.subgraphs[0]
    has = {i for i, t in enumerate(subgraph.tensors) if _range(t) is not None}
    refine, derive = [], {}
    for op in subgraph.operators:
        oc = model.operatorCodes[op.opcodeIndex]
        name = opcode_name(oc.builtinCode, oc.deprecatedBuiltinCode, oc.customCode)
        inputs = [int(i) for i in op.inputs]
        ins = [i for i in inputs if i in has]
        consts = [_scalar_constant(model, i) if i >= 0 and i not in has else None for i in inputs]
        for out in (int(o) for o in op.outputs):
            if out not in has:
                continue
            if name in SAME_SCALE_OPS and ins:
                derive[out] = lambda r, ins=ins: (min(r[i][0] for i in ins),
                                                  max(r[i][1] for i in ins))
            elif name in FIXED_RANGE_OPS:
                derive[out] = lambda r, fixed=FIXED_RANGE_OPS[name]: fixed
            elif (name in SCALAR_OPS and len(inputs) == 2 and len(ins) == 1
                  and sum(c is not None for c in consts) == 1):
                c = next(v for v in consts if v is not None)
                f = SCALAR_OPS[name]
                first = inputs[0] == ins[0]
                derive[out] = lambda r, i=ins[0], c=c, f=f, first=first: tuple(sorted(
                    (f(r[i][0], c, first), f(r[i][1], c, first))))
            else:
                refine.append(out)
    return refine, derive


class RangeSet:
    """A calibrated TFLite model plus its range plan: writes the model with every activation
    range set from the calibrated min/max, the per-tensor minimum-MSE factors and a common
    extra shrink factor ``gamma`` (see ``bytes_for``)."""

    def __init__(self, model, refine, derive, calibrated, alphas):
        self.model, self.refine, self.derive = model, refine, derive
        self.calibrated, self.alphas = calibrated, alphas

    def bytes_for(self, gamma=1.0):
        """Model bytes with each refined tensor's range ``min(1, gamma * alpha) * (lo, hi)``
        and the derived ranges recomputed from those."""
        from tensorflow.lite.tools import flatbuffer_utils
        ranges = dict(self.calibrated)
        for i in self.refine:
            a = min(1.0, gamma * self.alphas[i])
            ranges[i] = (a * ranges[i][0], a * ranges[i][1])
        for out, rule in self.derive.items():        # execution order: inputs are final
            ranges[out] = rule(ranges)
        tensors = self.model.subgraphs[0].tensors
        for i in list(self.refine) + list(self.derive):
            tensors[i].quantization.min = np.array([ranges[i][0]], np.float32)
            tensors[i].quantization.max = np.array([ranges[i][1]], np.float32)
        return bytes(flatbuffer_utils.convert_object_to_bytearray(self.model))


def _interpreter(content, **kwargs):
    from ai_edge_litert.interpreter import Interpreter
    with warnings.catch_warnings():   # "intended for debugging": keeping them is the point here
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        return Interpreter(model_content=bytes(content), num_threads=2, **kwargs)


def _set_input(interp, image):
    """Feed one float32 (H,W,3) [0,1] image (resizing the input if needed; uint8 inputs get
    their quantization applied)."""
    (inp,) = interp.get_input_details()
    x = np.asarray(image, np.float32)[None]
    if tuple(x.shape) != tuple(inp["shape"]):
        interp.resize_tensor_input(inp["index"], x.shape)
        interp.allocate_tensors()
        (inp,) = interp.get_input_details()
    interp.set_tensor(inp["index"], tflite_input(x, inp))


def refine_ranges(calibrated, images, progress=None):
    """Minimum-MSE ranges for a calibrated TFLite model.

    calibrated: bytes of the float model with min/max stats (from TF's calibrator).
    images: float32 (H,W,3) RGB [0,1] calibration images of the model's input size.
    Returns ``(range_set, report)``: a ``RangeSet`` (``range_set.bytes_for(1.0)`` is the model
    with minimum-MSE ranges) and {"tensors": n refined, "shrunk": m, "median_alpha": a}.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    if len(model.subgraphs) != 1:
        raise ValueError(f"expected one subgraph, the calibrated model has {len(model.subgraphs)}")
    tensors = model.subgraphs[0].tensors
    refine, derive = range_plan(model)
    images = list(images)
    if not images or not refine:
        raise ValueError("refine_ranges needs calibration images and a calibrated model")
    interp = _interpreter(calibrated, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    ranges = {i: _range(t) for i, t in enumerate(tensors) if _range(t) is not None}
    counts = {i: 0 for i in refine}
    for k, image in enumerate(images):
        _set_input(interp, image)
        interp.invoke()
        for i in refine:
            counts[i] = counts[i] + histogram(interp.get_tensor(i), *ranges[i])
        if progress:
            progress(k + 1, len(images))
    alphas = {i: best_alpha(counts[i], *ranges[i]) for i in refine}
    values = list(alphas.values())
    report = {"tensors": len(values), "shrunk": int(sum(a < 1.0 for a in values)),
              "median_alpha": float(np.median(values))}
    return RangeSet(model, refine, derive, ranges, alphas), report


def _output_indices(interp):
    """Output tensor indices in the order of their names (signature output names when the
    model has exactly one signature, else tensor names)."""
    signatures = interp.get_signature_list()
    if len(signatures) == 1:
        details = interp.get_signature_runner(next(iter(signatures))).get_output_details()
        return [details[k]["index"] for k in sorted(details)]
    return [d["index"] for d in sorted(interp.get_output_details(), key=lambda d: d["name"])]


def model_outputs(content, images):
    """Outputs of a TFLite model run with LiteRT's default CPU path on ``images`` (float32
    (H,W,3) [0,1]): one flat float64 array per output (``_output_indices`` order)."""
    interp = _interpreter(content)
    interp.allocate_tensors()
    got = []
    for image in images:
        _set_input(interp, image)
        interp.invoke()
        got.append([interp.get_tensor(i).astype(np.float64).ravel()
                    for i in _output_indices(interp)])
    return [np.concatenate(parts) for parts in zip(*got)]


def output_error(outputs, reference):
    """Mean over the outputs of mean |output - reference| / (reference's value span); both
    lists as returned by ``model_outputs``."""
    return float(np.mean([np.mean(np.abs(v - r)) / max(float(np.ptp(r)), 1e-12)
                          for v, r in zip(outputs, reference, strict=True)]))


@contextlib.contextmanager
def refined_calibration(images, search=True, progress=None):
    """While active, TF's int8 calibrator returns minimum-MSE ranges (see the module
    docstring); with ``search``, TF's quantizer is also run once per factor in ``GAMMAS`` and
    the quantized model with the least ``output_error`` on up to ``SEARCH_IMAGES`` of
    ``images`` is kept. progress: callable(message) or None. Yields a dict holding the report
    after the conversion; raises RuntimeError at exit if the converter never called the
    calibrator (or the quantizer)."""
    say = progress or (lambda message: None)
    images = list(images)
    state = {}

    def histogram_progress(k, n):
        if k % 8 == 0 or k == n:
            say(f"int8 ranges: histograms of {k}/{n} calibration images")

    def calibrate(original_calibrate, calibrator, dataset_gen):
        calibrated = original_calibrate(calibrator, dataset_gen)
        if search:
            state["float"] = calibrated        # the search's float reference
        state["ranges"], state["report"] = refine_ranges(calibrated, images,
                                                         progress=histogram_progress)
        return state["ranges"].bytes_for(1.0)

    def quantize(original_quantize, calibrated, *args, **kwargs):
        if not search or "ranges" not in state:
            return original_quantize(calibrated, *args, **kwargs)
        subset = images[:SEARCH_IMAGES]
        reference = model_outputs(state.pop("float"), subset)
        tried = {}
        for gamma in GAMMAS:
            content = original_quantize(state["ranges"].bytes_for(gamma), *args, **kwargs)
            tried[gamma] = (output_error(model_outputs(content, subset), reference), content)
            say(f"int8 ranges: common factor {gamma:g}: relative output error "
                f"{tried[gamma][0]:.2e} on {len(subset)} calibration images")
        best = min(tried, key=lambda g: (tried[g][0], -g))
        state["report"].update(gamma=best, search_errors={g: e for g, (e, _) in tried.items()})
        return tried[best][1]

    with converter_hooks(calibrate, quantize):
        yield state
    if "report" not in state or (search and "gamma" not in state["report"]):
        raise RuntimeError("TF's TFLite converter did not call Calibrator.calibrate and "
                           "mlir_quantize as expected; refined ranges could not be applied "
                           "(use min/max ranges)")
