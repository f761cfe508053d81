"""Rounding of single int8 TFLite ops: LiteRT's XNNPACK kernels vs TFLite's reference kernels.

Each op (LEAKY_RELU with alpha 0.2 as in DMENet, ADD, LOGISTIC) is converted
alone to full int8 with int8 input and output, fed int8 values, and compared with the float op
applied to the dequantized input. Prints, per kernel path, the mean |error| and the mean signed
error in output steps, split by the sign of the (first) input. Correct round-to-nearest gives a
mean |error| of 0.25 step and no bias; ``export/DEPLOYMENT.md`` quotes this run.

    python benchmarks/litert_kernels.py [--size=64] [--images=8]
"""

import argparse
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

OPS = {
    "LEAKY_RELU": (lambda x: __import__("tensorflow").nn.leaky_relu(x, 0.2), 1),
    "ADD": (lambda x, y: x + y, 2),
    "LOGISTIC": (lambda x: __import__("tensorflow").sigmoid(x), 1),
}


def convert(fn, data):
    """Full-int8 TFLite bytes of ``fn`` (a tf.function), int8 input and output."""
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.representative_dataset = lambda: iter(data)
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with warnings.catch_warnings():   # the converter's own calibrator warns of its interpreter
        warnings.filterwarnings("ignore", message=".*is deprecated.*")
        return conv.convert()


def errors(content, fn, data, builtin):
    """Errors in output steps of the int8 model against ``fn`` on the dequantized inputs:
    (all, on negative first input, on non-negative first input)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin else OpResolverType.AUTO
    interp = Interpreter(model_content=content, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    ins, (out,) = interp.get_input_details(), interp.get_output_details()
    err, neg = [], []
    for sample in data:
        xs = []
        for det, v in zip(ins, sample):
            s, z = det["quantization"]
            q = np.clip(np.round(v / s + z), -128, 127).astype(np.int8)
            interp.set_tensor(det["index"], q)
            xs.append((q.astype(np.float32) - z) * s)
        interp.invoke()
        s, z = out["quantization"]
        got = (interp.get_tensor(out["index"]).astype(np.float32) - z) * s
        err.append(((got - fn(*xs).numpy()) / s).ravel())
        neg.append((xs[0] < 0).ravel())
    err, neg = np.concatenate(err), np.concatenate(neg)
    return err, err[neg], err[~neg]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64, help="H = W of the test tensors (8 channels)")
    p.add_argument("--images", type=int, default=8, help="random test tensors per op")
    args = p.parse_args()
    import tensorflow as tf
    rng = np.random.default_rng(0)
    shape = [1, args.size, args.size, 8]
    print(f"int8 op error in output steps, {args.images} random tensors {shape} per op "
          f"(ideal rounding: mean |err| 0.25, bias 0)")
    print(f"{'op':14s} {'kernels':10s} {'mean |err|':>10s} {'bias x<0':>9s} {'bias x>=0':>10s}")
    for name, (f, n) in OPS.items():
        fn = tf.function(f, input_signature=[tf.TensorSpec(shape, tf.float32)] * n)
        data = [[(rng.normal(size=shape) * (1 + k)).astype(np.float32) for k in range(n)]
                for _ in range(args.images)]
        content = convert(fn, data)
        for label, builtin in (("XNNPACK", False), ("reference", True)):
            err, neg, pos = errors(content, fn, data, builtin)
            print(f"{name:14s} {label:10s} {np.abs(err).mean():10.3f} {neg.mean():9.3f} "
                  f"{pos.mean():10.3f}")


if __name__ == "__main__":
    main()
