"""Reusable checks for exported tf_defocus models (SavedModel for TF Serving, TFLite / LiteRT).

Kind-generic: the same helpers check a BlurEstimator (outputs ``sigma_px`` + ``focus``) and a
DoFNet (``focus`` only). Typical use::

    model = conditioned(tiny_model, images)                 # sane BN statistics
    version_dir = export_saved_model(model, tmp)
    out, report = run_saved_model_isolated(version_dir, images, [png_bytes])
    assert report["tf_defocus_importable"] is False
    assert max_abs_diff(out["serve"], expected_outputs(kind, keras_native(model, images))) < 1e-4

Parity is measured in the model's native units (sigma/7 for defocus, the weight for DoF):
``sigma_px`` outputs are divided by 7 before comparing.
"""

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

SIGMA_MAX_PX = 7.0

# ----------------------------------------------------------------------------- models and data


def conditioned(model, images):
    """Set every BatchNormalization's moving statistics to the batch statistics of ``images``.

    A randomly initialised deep net (VGG encoder on 0..255 inputs) has activations so large
    that the sigmoid saturates and float32 round-off between runtimes is amplified; with
    BN statistics from real data it behaves like a trained net. Returns ``model``.
    """
    import keras
    bns = [l for l in _all_layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    saved = [l.momentum for l in bns]
    try:
        for l in bns:
            l.momentum = 0.0
        model(np.asarray(images, np.float32), training=True)
    finally:
        for l, m in zip(bns, saved):
            l.momentum = m
    return model


def _all_layers(model):
    import keras
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def data_engine_images(count, height, width, seed=1000, psf="gaussian"):
    """``count`` data-engine images, float32 (N, H, W, 3) RGB [0,1], and sigma/7 labels
    (N, H, W, 1)."""
    from tf_defocus.data.synthesize import synthesize
    samples = [synthesize(seed + i, width, height, psf=psf) for i in range(count)]
    images = np.stack([s.image for s in samples]).astype(np.float32)
    labels = np.stack([s.sigma_px for s in samples])[..., None] / SIGMA_MAX_PX
    return images, labels.astype(np.float32)


def encode_png(image):
    """float32 (H, W, 3) [0,1] -> PNG bytes (8-bit), and the exact float image it decodes to."""
    import cv2
    u8 = np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", u8[..., ::-1])
    assert ok
    return buf.tobytes(), u8.astype(np.float32) / 255.0


def keras_native(model, images):
    """Keras model output in native units, float32 (N, H, W, 1)."""
    y = model(np.asarray(images, np.float32), training=False)
    if isinstance(y, dict):
        (y,) = y.values()
    return np.asarray(y, np.float32)


def expected_outputs(kind, native):
    """The export contract's outputs for native model output (N,H,W,1)."""
    if kind == "defocus":
        return {"sigma_px": native * SIGMA_MAX_PX, "focus": 1.0 - native}
    return {"focus": native}


def to_native(outputs):
    """Exported outputs dict -> the native map (N,H,W,1): sigma_px / 7, else focus."""
    if "sigma_px" in outputs:
        return np.asarray(outputs["sigma_px"], np.float32) / SIGMA_MAX_PX
    return np.asarray(outputs["focus"], np.float32)


def max_abs_diff(outputs, expected):
    """Largest |a - b| over the outputs of ``expected``, in native units (sigma_px / 7)."""
    worst = 0.0
    for k, ref in expected.items():
        got = np.asarray(outputs[k], np.float32)
        assert got.shape == ref.shape, (k, got.shape, ref.shape)
        scale = SIGMA_MAX_PX if k == "sigma_px" else 1.0
        worst = max(worst, float(np.max(np.abs(got - ref))) / scale)
    return worst


def mae(a, b):
    """Mean absolute difference of two arrays (float)."""
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ----------------------------------------------------------------------------- SavedModel

_ISOLATED_RUNNER = textwrap.dedent(r'''
    import json, sys
    sys.modules["tf_defocus"] = None          # like TF Serving: no project code available
    try:
        import tf_defocus  # noqa: F401
        importable = True
    except ImportError:
        importable = False
    import numpy as np
    import tensorflow as tf

    args = json.loads(sys.argv[1])
    loaded = tf.saved_model.load(args["dir"])
    report = {"tf_defocus_importable": importable, "signatures": sorted(loaded.signatures),
              "modules": sorted(m for m in sys.modules if m.startswith("tf_defocus")
                                and sys.modules[m] is not None)}
    data = np.load(args["inputs"])
    out = {}
    serve = loaded.signatures["serve"]
    report["serve_inputs"] = sorted(serve.structured_input_signature[1])
    for k, v in serve(image=tf.constant(data["images"])).items():
        out["serve/" + k] = v.numpy()
    blobs = [data["blob%d" % i].tobytes() for i in range(int(data["num_blobs"]))]
    if blobs:
        sd = loaded.signatures["serving_default"]
        report["bytes_inputs"] = sorted(sd.structured_input_signature[1])
        for k, v in sd(image_bytes=tf.constant(blobs)).items():
            out["bytes/" + k] = v.numpy()
    errors = {}
    for name, bad in [("corrupt", [b"this is not an image"]),
                      ("truncated", [blobs[0][: len(blobs[0]) // 2]] if blobs else None)]:
        if bad is None:
            continue
        try:
            loaded.signatures["serving_default"](image_bytes=tf.constant(bad))
            errors[name] = "no error"
        except tf.errors.InvalidArgumentError as e:
            errors[name] = "InvalidArgumentError: " + str(e.message).splitlines()[0][:200]
        except Exception as e:  # noqa: BLE001
            errors[name] = type(e).__name__
    report["errors"] = errors
    np.savez(args["outputs"], **out)
    print("REPORT " + json.dumps(report))
''')


def run_saved_model_isolated(version_dir, images, blobs=(), workdir=None, timeout=300):
    """Load ``version_dir`` in a fresh Python (``-I``, cwd outside the repo, ``tf_defocus``
    blocked) and call both signatures.

    images: float32 (N,H,W,3) for ``serve``; blobs: encoded images for ``serving_default``.
    Also sends a corrupt and a truncated image. Returns ``(outputs, report)``:
    outputs {"serve": {name: array}, "bytes": {name: array}}; report has
    ``tf_defocus_importable``, ``signatures``, ``errors`` {"corrupt": ..., "truncated": ...}.
    """
    workdir = Path(workdir or Path(version_dir).parent)
    inputs = workdir / "isolated_inputs.npz"
    outputs = workdir / "isolated_outputs.npz"
    arrays = {"images": np.asarray(images, np.float32), "num_blobs": np.array(len(blobs))}
    for i, b in enumerate(blobs):
        arrays[f"blob{i}"] = np.frombuffer(b, np.uint8)
    np.savez(inputs, **arrays)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = json.dumps({"dir": str(Path(version_dir).resolve()), "inputs": str(inputs.resolve()),
                       "outputs": str(outputs.resolve())})
    proc = subprocess.run([sys.executable, "-I", "-c", _ISOLATED_RUNNER, args], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"isolated SavedModel run failed (rc {proc.returncode}):\n"
                             f"{proc.stderr[-3000:]}")
    report = json.loads(lines[-1][len("REPORT "):])
    data = np.load(outputs)
    out = {"serve": {}, "bytes": {}}
    for key in data.files:
        sig, name = key.split("/", 1)
        out[sig][name] = data[key]
    return out, report


def saved_model_cli_show(saved_model_dir):
    """Text of ``saved_model_cli show --all --dir DIR`` (the console script next to python)."""
    cli = Path(sys.executable).with_name("saved_model_cli")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m",
                                           "tensorflow.python.tools.saved_model_cli"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd + ["show", "--all", "--dir", str(saved_model_dir)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def serving_proto_classes():
    """Message classes for ``tensorflow.serving.PredictionLog`` built from a descriptor written
    here independently of ``tf_defocus.export.warmup`` (field numbers from
    ``tensorflow_serving/apis/{prediction_log,predict,model}.proto``), in a private pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorflow.core.framework import tensor_pb2

    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(fd):
        for dep in fd.dependencies:
            add(dep)
        if fd.name not in added:
            proto = descriptor_pb2.FileDescriptorProto()
            fd.CopyToProto(proto)
            pool.Add(proto)
            added.add(fd.name)

    add(tensor_pb2.DESCRIPTOR)
    F = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="tf_defocus_test/serving.proto",
                                           package="tensorflow.serving", syntax="proto3",
                                           dependency=[tensor_pb2.DESCRIPTOR.name])

    def msg(name, fields):
        m = f.message_type.add(name=name)
        for fname, num, ftype, type_name, label in fields:
            fld = m.field.add(name=fname, number=num, type=ftype, label=label)
            if type_name:
                fld.type_name = type_name
        return m

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("ModelSpec", [("name", 1, F.TYPE_STRING, None, opt),
                      ("signature_name", 3, F.TYPE_STRING, None, opt)])
    req = msg("PredictRequest", [("model_spec", 1, F.TYPE_MESSAGE, ".tensorflow.serving.ModelSpec", opt),
                                 ("inputs", 2, F.TYPE_MESSAGE,
                                  ".tensorflow.serving.PredictRequest.InputsEntry", rep)])
    entry = req.nested_type.add(name="InputsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt,
                    type_name=".tensorflow.TensorProto")
    msg("PredictLog", [("request", 1, F.TYPE_MESSAGE, ".tensorflow.serving.PredictRequest", opt)])
    msg("PredictionLog", [("predict_log", 6, F.TYPE_MESSAGE, ".tensorflow.serving.PredictLog", opt)])
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(
        "tensorflow.serving.PredictionLog"))


def model_server_config_class():
    """Message class for ``tensorflow.serving.ModelServerConfig`` (the fields a
    ``models.config`` uses; numbers from ``tensorflow_serving/config/model_server_config.proto``),
    built in a private descriptor pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="tf_defocus_test/model_server_config.proto",
                                           package="tensorflow.serving", syntax="proto3")
    cfg = f.message_type.add(name="ModelConfig")
    for name, num in (("name", 1), ("base_path", 2), ("model_platform", 4)):
        cfg.field.add(name=name, number=num, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    lst = f.message_type.add(name="ModelConfigList")
    lst.field.add(name="config", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                  type_name=".tensorflow.serving.ModelConfig")
    top = f.message_type.add(name="ModelServerConfig")
    top.field.add(name="model_config_list", number=1, type=F.TYPE_MESSAGE,
                  label=F.LABEL_OPTIONAL, type_name=".tensorflow.serving.ModelConfigList")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.ModelServerConfig"))


def read_warmup_requests(saved_model_dir):
    """Parse ``assets.extra/tf_serving_warmup_requests`` -> list of dicts
    {"model_name", "signature_name", "inputs": {name: np.ndarray}}."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    path = Path(saved_model_dir) / "assets.extra" / "tf_serving_warmup_requests"
    PredictionLog = serving_proto_classes()
    out = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = PredictionLog.FromString(record.numpy())
        req = log.predict_log.request
        # The private pool's TensorProto class -> TF's own via bytes.
        inputs = {k: tf.make_ndarray(tensor_pb2.TensorProto.FromString(v.SerializeToString()))
                  for k, v in req.inputs.items()}
        out.append({"model_name": req.model_spec.name,
                    "signature_name": req.model_spec.signature_name, "inputs": inputs})
    return out


# ----------------------------------------------------------------------------- TFLite

def run_tflite(path, images, threads=1):
    """Run a ``.tflite`` file's ``serve`` signature in LiteRT on float32 (N,H,W,3) [0,1] images
    (one at a time for batch-1 models). uint8 inputs are quantised with the model's own input
    scale / zero point. Returns {output name: float32 (N,H,W,1)}."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(path), num_threads=threads)
    runner = interp.get_signature_runner("serve")
    (name, details), = runner.get_input_details().items()
    images = np.asarray(images, np.float32)
    fixed_batch = int(details["shape_signature"][0]) == 1
    chunks = [images[i:i + 1] for i in range(len(images))] if fixed_batch else [images]
    results = {}
    for x in chunks:
        if details["dtype"] == np.uint8:   # written out here, not tf_defocus.artifacts'
            scale, zero = details["quantization"]     # tflite_input: the test's own contract
            x = np.clip(np.round(x / scale + zero), 0, 255).astype(np.uint8)
        for k, v in runner(**{name: x}).items():
            results.setdefault(k, []).append(np.asarray(v, np.float32))
    return {k: np.concatenate(v) for k, v in results.items()}


def assert_builtin_ops_only(path):
    """Assert the ``.tflite`` file uses TFLite builtin ops only; returns the op names."""
    from tf_defocus.export.tflite import tflite_op_names
    ops = tflite_op_names(path)
    assert ops, f"{path}: no operators found"
    custom = [o for o in ops if o.startswith("CUSTOM:")]
    assert not custom, f"{path}: non-builtin ops {custom}"
    return ops


# ----------------------------------------------------------------------------- REST


def b64_instances(blobs):
    """TF Serving REST row-format body for the ``serving_default`` bytes signature."""
    return {"signature_name": "serving_default",
            "instances": [{"b64": base64.b64encode(b).decode("ascii")} for b in blobs]}


def activation_scales(path):
    """{tensor name: scale} of the per-tensor-quantized int8 tensors of a ``.tflite`` file that
    hold no constant data (activations)."""
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model(str(path))
    out = {}
    for t in model.subgraphs[0].tensors:
        q = t.quantization
        has_data = t.buffer > 0 and model.buffers[t.buffer].data is not None
        if q is not None and q.scale is not None and len(q.scale) == 1 and not has_data:
            out[t.name.decode() if isinstance(t.name, bytes) else t.name] = float(q.scale[0])
    return out
