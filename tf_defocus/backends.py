"""The model backends of ``tf_defocus.inference``: each runs one saved model on a batch.

Three artifact formats (``tf_defocus.artifacts``), chosen by ``open_backend(path)``:

* ``.keras`` inference model; its name gives the kind (``blur_estimator`` -> ``defocus``,
  ``dofnet`` -> ``dof_weight``); output (N,H,W,1) sigma/7 or focus weight;
* SavedModel directory with a ``serve`` signature: float32 (N,H,W,3) RGB [0,1] -> dict
  ``sigma_px`` and ``focus`` (N,H,W,1) (``dof_weight`` kind: ``focus`` only); kind from
  ``<dir>/tf_defocus.json``;
* ``.tflite`` file run with LiteRT (``ai_edge_litert``); sidecar ``<stem>.json`` gives the kind,
  a fixed ``input_size`` (then tiles are that size), normalisation and quantization.

A backend maps float32 (N,h,w,3) RGB [0,1] to float32 (N,h,w) in the kind's native units
(defocus: sigma/7; dof_weight: focus weight in [0,1]). TensorFlow's process-wide thread pools
are set only by ``set_tf_threads``, never by loading.
"""

from pathlib import Path

import numpy as np

from tf_defocus import artifacts, litert, model_kinds

DEFAULT_TFLITE_THREADS = 2


class ModelLoadError(ValueError):
    """A path that is not a usable tf_defocus model (message names the file)."""


class Backend:
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


class _KerasBackend(Backend):
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


class _SavedModelBackend(Backend):
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


class _TFLiteBackend(Backend):
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


def open_backend(path, threads=None):
    """The backend of a ``.keras`` file, SavedModel directory (or a folder holding one, see
    ``_saved_model_dir``; else a training model_dir, loaded as its ``.keras`` inference model) or
    ``.tflite`` file (``threads``: its interpreter's, default ``DEFAULT_TFLITE_THREADS``).
    ModelLoadError (naming the path) for anything that is not a tf_defocus model."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    if p.is_dir():
        sm = _saved_model_dir(p)
        return _SavedModelBackend(sm) if sm is not None else _KerasBackend(p)
    if p.suffix == ".keras":
        return _KerasBackend(p)
    if p.suffix == ".tflite":
        return _TFLiteBackend(p, threads or DEFAULT_TFLITE_THREADS)
    raise ModelLoadError(f"{path}: unknown model format {p.suffix!r}; expected a .keras file, "
                         f"a SavedModel directory or a .tflite file")


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
