#!/usr/bin/env python3
"""Generates the LiteRT conformance cases of lowbit's integer LSTM (tests/data/litert/).

Each case is a small LSTM quantized by TensorFlow Lite's post-training full-integer quantizer
(int8 weights and activations, int16 gates and cell: the 8x8_16 kernel, recognised by its five
intermediate tensors), run by the LiteRT interpreter with its reference kernels. For every case
the script writes

    NAME.lbm       the same network as a lowbit integer `kind: lstm` model file
                   (docs/formats.md; TFLite's quantized tensors and scales copied unchanged)
    NAME.in.npy    int8 input codes [T, B, n_input]
    NAME.out.npy   LiteRT's int8 output codes [T, B, n_output]

and manifest.json (variant flags, sizes, TensorFlow and LiteRT versions). `lowbit run` must
reproduce NAME.out.npy byte for byte (tests/litert_conformance.sh).

Two sources of quantized models:
  keras      a tf.keras LSTM layer converted by TFLiteConverter (MLIR converter and quantizer):
             the converter fuses Keras' LSTM into UNIDIRECTIONAL_SEQUENCE_LSTM, plain variant
             only (no CIFG, peephole, projection or layer norm);
  flatbuffer a float UNIDIRECTIONAL_SEQUENCE_LSTM written directly as a TFLite flatbuffer (so
             that the optional CIFG / peephole / projection / layer-norm tensors can be set),
             then calibrated and quantized by TFLite's calibrator (the logging LSTM kernel and
             the operator-property quantizer that the converter uses with the legacy quantizer).

Run inside the bench environment (bash scripts/bench-env.sh), from the repository root:

    .venv-bench/bin/python tests/litert/make_litert_goldens.py            # writes tests/data/litert/
    .venv-bench/bin/python tests/litert/make_litert_goldens.py --out DIR  # elsewhere
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from importlib import metadata
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent

# --------------------------------------------------------------------------------------------
# lowbit model files (docs/formats.md), numpy only.

LOWBIT_DTYPES = {np.dtype("float32"): "F32", np.dtype("int8"): "I8", np.dtype("uint8"): "U8",
                 np.dtype("int16"): "I16", np.dtype("int32"): "I32", np.dtype("uint64"): "U64"}


def write_lowbit_model(path: Path, metadata_obj: dict, tensors: list[tuple[str, np.ndarray]]):
    """Writes a lowbit container: u64 header length, JSON header padded with spaces to a
    multiple of 64 bytes (counting the 8 length bytes), then the tensors in the given order,
    each starting 64-byte aligned, zero padding between them, no trailing bytes."""
    header = {"__metadata__": metadata_obj}
    blobs = []
    offset = 0
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dtype = LOWBIT_DTYPES[arr.dtype]
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        offset = (offset + 63) // 64 * 64  # data section starts aligned, so this aligns the file
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append((offset, raw))
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    n = len(text) + (-(8 + len(text)) % 64)
    text += b" " * (n - len(text))
    data = bytearray(offset)
    for begin, raw in blobs:
        data[begin:begin + len(raw)] = raw
    path.write_bytes(struct.pack("<Q", n) + text + bytes(data))


# --------------------------------------------------------------------------------------------
# Cases.

GATES = ("input", "forget", "cell", "output")

CASES = [
    # name, source, flags, sizes, clips. Sizes stay tiny: the files are committed.
    dict(name="keras_plain", source="keras", cifg=False, peephole=False, projection=False,
         layer_norm=False, T=7, B=3, n_input=5, n_cell=8),
    dict(name="plain", source="flatbuffer", cifg=False, peephole=False, projection=False,
         layer_norm=False, T=6, B=3, n_input=5, n_cell=7, cell_clip=0.0),
    dict(name="cifg", source="flatbuffer", cifg=True, peephole=False, projection=False,
         layer_norm=False, T=6, B=3, n_input=4, n_cell=6),
    dict(name="peephole", source="flatbuffer", cifg=False, peephole=True, projection=False,
         layer_norm=False, T=6, B=2, n_input=5, n_cell=6),
    dict(name="projection", source="flatbuffer", cifg=False, peephole=False, projection=True,
         layer_norm=False, T=6, B=3, n_input=5, n_cell=8, n_output=4, proj_clip=0.6),
    dict(name="layer_norm", source="flatbuffer", cifg=False, peephole=False, projection=False,
         layer_norm=True, T=6, B=3, n_input=5, n_cell=8),
    dict(name="cell_clip", source="flatbuffer", cifg=False, peephole=False, projection=False,
         layer_norm=False, T=8, B=2, n_input=4, n_cell=6, cell_clip=0.8, weight_gain=2.0),
    dict(name="cifg_peephole", source="flatbuffer", cifg=True, peephole=True,
         projection=False, layer_norm=False, T=6, B=3, n_input=5, n_cell=8),
    dict(name="peephole_projection_layer_norm", source="flatbuffer", cifg=False, peephole=True,
         projection=True, layer_norm=True, T=6, B=3, n_input=4, n_cell=8, n_output=5,
         projection_bias=True, cell_clip=3.0),
    dict(name="cifg_peephole_projection", source="flatbuffer", cifg=True, peephole=True,
         projection=True, layer_norm=False, T=5, B=4, n_input=6, n_cell=8, n_output=4,
         projection_bias=True, cell_clip=2.0, proj_clip=0.7),
    # The calibrated output range stays inside a float projection clip, so its quantized
    # value saturates at 127 and never bites; this case lowers the clip of the quantized
    # model afterwards (a valid TFLite model) so that the integer clip cuts outputs.
    dict(name="projection_clip_applied", source="flatbuffer", cifg=False, peephole=False,
         projection=True, layer_norm=False, T=6, B=3, n_input=5, n_cell=8, n_output=6,
         set_proj_clip=0.3),
    # The hidden zero point moved far from its calibrated value (a valid TFLite model), so
    # that the int8 hidden value saturates often: pins where TFLite clamps it.
    dict(name="projection_hidden_zp_moved", source="flatbuffer", cifg=False, peephole=True,
         projection=True, layer_norm=False, T=6, B=3, n_input=5, n_cell=6, n_output=6,
         projection_bias=True, set_hidden_zp=90),
    # Without projection the hidden codes become the output state: a hidden zero point that
    # differs from the output state's shifts every output (TFLite adds it there).
    dict(name="plain_hidden_zp_moved", source="flatbuffer", cifg=False, peephole=False,
         projection=False, layer_norm=False, T=5, B=2, n_input=4, n_cell=6, set_hidden_zp=40),
    # CIFG together with layer norm is left out: TFLite's integer kernel keeps the cell state
    # at 0 and the output constant for every such model (see tests/litert/README.md).
]


def float_weights(case, rng):
    """Random float LSTM parameters (TFLite names), large enough that gates saturate partly."""
    I, C = case["n_input"], case["n_cell"]
    P = case.get("n_output", C) if case["projection"] else C
    g = case.get("weight_gain", 1.0)
    w = {}
    for gate in GATES:
        if case["cifg"] and gate == "input":
            continue
        w[f"input_to_{gate}_weights"] = rng.uniform(-1, 1, (C, I)) * g * 1.5 / np.sqrt(I)
        w[f"recurrent_to_{gate}_weights"] = rng.uniform(-1, 1, (C, P)) * g * 1.5 / np.sqrt(P)
        w[f"{gate}_gate_bias"] = rng.uniform(-0.5, 0.5, C) + (1.0 if gate == "forget" else 0.0)
        if case["peephole"] and gate != "cell":
            w[f"cell_to_{gate}_weights"] = rng.uniform(-0.6, 0.6, C)
        if case["layer_norm"]:
            w[f"{gate}_layer_norm_coefficients"] = rng.uniform(0.5, 1.5, C)
    if case["projection"]:
        w["projection_weights"] = rng.uniform(-1, 1, (P, C)) * 1.5 / np.sqrt(C)
        if case.get("projection_bias"):
            w["projection_bias"] = rng.uniform(-0.2, 0.2, P)
    return {k: v.astype(np.float32) for k, v in w.items()}


# TFLite's input order of LSTM / UNIDIRECTIONAL_SEQUENCE_LSTM (index -> tensor name).
LSTM_INPUTS = (
    ["input"]
    + [f"input_to_{g}_weights" for g in GATES]
    + [f"recurrent_to_{g}_weights" for g in GATES]
    + [f"cell_to_{g}_weights" for g in ("input", "forget", "output")]
    + [f"{g}_gate_bias" for g in GATES]
    + ["projection_weights", "projection_bias", "output_state", "cell_state"]
    + [f"{g}_layer_norm_coefficients" for g in GATES]
)


def calibration_batches(case, rng, count=64):
    """Float inputs [T, B, I] for calibration: a shifted normal so that the input zero point
    is far from 0."""
    shape = (case["T"], case["B"], case["n_input"])
    return [(rng.normal(0.6, 1.0, shape)).astype(np.float32) for _ in range(count)]


def float_flatbuffer(case, w):
    """A float TFLite model with one time-major UNIDIRECTIONAL_SEQUENCE_LSTM."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    T, B, I, C = case["T"], case["B"], case["n_input"], case["n_cell"]
    P = case.get("n_output", C) if case["projection"] else C
    model = fb.ModelT()
    model.version = 3
    model.description = "lowbit LiteRT conformance case"
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [fb.BufferT()]
    sg = fb.SubGraphT()
    sg.tensors = []
    sg.name = "main"

    def add_tensor(name, shape, data=None, variable=False):
        t = fb.TensorT()
        t.name = name
        t.shape = list(shape)
        t.type = fb.TensorType.FLOAT32
        buf = fb.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data, dtype="<f4").tobytes(), np.uint8)
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
        t.isVariable = variable
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    inputs = []
    for name in LSTM_INPUTS:
        if name == "input":
            inputs.append(add_tensor("input", (T, B, I)))
        elif name == "output_state":
            inputs.append(add_tensor("output_state", (B, P), variable=True))
        elif name == "cell_state":
            inputs.append(add_tensor("cell_state", (B, C), variable=True))
        elif name in w:
            inputs.append(add_tensor(name, w[name].shape, w[name]))
        else:
            inputs.append(-1)
    out = add_tensor("output", (T, B, P))
    # The 8x8_16 recipe's five intermediates (gate pre-activations i, f, c, o; hidden): the
    # calibrator logs their ranges and the quantizer gives them their scales.
    intermediates = [add_tensor(f"{g}_intermediate", (0,)) for g in
                     ("input_to_input", "input_to_forget", "input_to_cell", "input_to_output",
                      "effective_hidden_scale")]
    op = fb.OperatorT()
    op.opcodeIndex = 0
    op.inputs = inputs
    op.outputs = [out]
    op.intermediates = intermediates
    op.builtinOptionsType = fb.BuiltinOptions.UnidirectionalSequenceLSTMOptions
    opt = fb.UnidirectionalSequenceLSTMOptionsT()
    opt.fusedActivationFunction = fb.ActivationFunctionType.TANH
    opt.cellClip = float(case.get("cell_clip", 0.0))
    opt.projClip = float(case.get("proj_clip", 0.0))
    opt.timeMajor = True
    op.builtinOptions = opt
    sg.operators = [op]
    sg.inputs = [inputs[0]]
    sg.outputs = [out]
    model.subgraphs = [sg]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantize_flatbuffer(case, float_model, rng):
    import tensorflow as tf
    from tensorflow.lite.python.optimize import calibrator

    batches = calibration_batches(case, rng)

    def gen():
        for x in batches:
            yield [x]

    cal = calibrator.Calibrator(float_model)
    return cal.calibrate_and_quantize(gen, tf.int8, tf.int8, False, activations_type=tf.int8)


def keras_quantized(case, rng):
    """A tf.keras LSTM (batch-major [B, T, I]) converted with full-integer quantization."""
    import tensorflow as tf

    T, B, I, C = case["T"], case["B"], case["n_input"], case["n_cell"]
    inp = tf.keras.Input(shape=(T, I), batch_size=B)
    layer = tf.keras.layers.LSTM(C, return_sequences=True)
    model = tf.keras.Model(inp, layer(inp))
    # Keras gate order in the fused matrices: i, f, c (Keras "g"), o.
    kernel = rng.uniform(-1, 1, (I, 4 * C)) * 1.5 / np.sqrt(I)
    recurrent = rng.uniform(-1, 1, (C, 4 * C)) * 1.5 / np.sqrt(C)
    bias = rng.uniform(-0.5, 0.5, 4 * C)
    bias[C:2 * C] += 1.0
    layer.set_weights([kernel.astype(np.float32), recurrent.astype(np.float32),
                       bias.astype(np.float32)])
    batches = [x.transpose(1, 0, 2).copy() for x in calibration_batches(case, rng)]

    def gen():
        for x in batches:
            yield [x]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


# --------------------------------------------------------------------------------------------
# Reading the quantized model back through LiteRT.


def the_lstm_op(flatbuffer: bytes):
    """(operator, options) of the only operator, which must be an integer 8x8_16
    UNIDIRECTIONAL_SEQUENCE_LSTM reading the model input and writing the model output."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    sg = model.subgraphs[0]
    names = []
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        names.append(flatbuffer_utils.opcode_to_name(model, op.opcodeIndex))
    if len(sg.operators) != 1 or max(code.builtinCode, code.deprecatedBuiltinCode) != \
            fb.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM:
        raise SystemExit(f"expected one UNIDIRECTIONAL_SEQUENCE_LSTM, the converter wrote {names}")
    op = sg.operators[0]
    inter = list(op.intermediates) if op.intermediates is not None else []
    if len(inter) != 5:
        raise SystemExit(f"expected the 8x8_16 kernel (5 intermediates), found {len(inter)}")
    if list(op.inputs)[0] != list(sg.inputs)[0] or list(op.outputs)[0] != list(sg.outputs)[0]:
        raise SystemExit("the LSTM does not read the model input and write the model output")
    return op, op.builtinOptions


def new_interpreter(flatbuffer: bytes, reference: bool):
    from ai_edge_litert import interpreter as litert

    kind = litert.OpResolverType.BUILTIN_REF if reference else litert.OpResolverType.BUILTIN
    it = litert.Interpreter(model_content=flatbuffer, num_threads=1,
                            experimental_op_resolver_type=kind,
                            experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def f32(x) -> float:
    """A float32 value as the double that represents it exactly (JSON keeps it exact)."""
    return float(np.float32(x))


def lowbit_model(case, flatbuffer: bytes):
    """(metadata, tensors) of the lowbit integer model equivalent to the quantized LSTM."""
    op, opt = the_lstm_op(flatbuffer)
    it = new_interpreter(flatbuffer, reference=True)
    details = {d["index"]: d for d in it.get_tensor_details()}

    def qparams(index):
        q = details[index]["quantization_parameters"]
        if len(q["scales"]) != 1:
            raise SystemExit(f"tensor {details[index]['name']}: expected per-tensor quantization")
        return f32(q["scales"][0]), int(q["zero_points"][0])

    expected_types = {"I8": np.int8, "I16": np.int16, "I32": np.int32}
    inputs = [int(i) for i in op.inputs]
    prefix = "lstm.0."
    quant = {}
    tensors = []
    for pos, name in enumerate(LSTM_INPUTS):
        idx = inputs[pos] if pos < len(inputs) else -1
        if idx < 0 or name in ("input", "output_state", "cell_state"):
            continue
        arr = it.get_tensor(idx)
        scale, zp = qparams(idx)
        if zp != 0:
            raise SystemExit(f"{name}: expected a symmetric tensor, zero point {zp}")
        want = ("I16" if name.startswith("cell_to") or name.endswith("coefficients")
                else "I32" if name.endswith("bias") else "I8")
        if arr.dtype != expected_types[want]:
            raise SystemExit(f"{name}: expected {want}, LiteRT has {arr.dtype}")
        tensors.append((prefix + name, arr.copy()))
        quant[name] = {"scale": scale}
    s, z = qparams(inputs[0])
    quant["input"] = {"scale": s, "zero_point": z}
    s, z = qparams(inputs[18])
    quant["output_state"] = {"scale": s, "zero_point": z}
    out_scale, out_zp = qparams(list(op.outputs)[0])
    if (out_scale, out_zp) != (s, z):
        raise SystemExit("output and output state are quantized differently")
    s, z = qparams(inputs[19])
    if z != 0 or details[inputs[19]]["dtype"] != np.int16:
        raise SystemExit("cell state: expected int16 symmetric")
    quant["cell_state"] = {"scale": s}
    inter = [int(i) for i in op.intermediates]
    s, z = qparams(inter[4])
    quant["hidden"] = {"scale": s, "zero_point": z}
    if case["layer_norm"]:
        for g, idx in zip(GATES, inter[:4]):
            if case["cifg"] and g == "input":
                continue
            s, z = qparams(idx)
            quant[f"gate_{g}"] = {"scale": s}
    n_input = int(details[inputs[0]]["shape"][-1])
    n_cell = int(details[inputs[19]]["shape"][-1])
    n_output = int(details[inputs[18]]["shape"][-1])
    layer = {
        "type": "lstm", "name": "lstm.0", "n_input": n_input, "n_cell": n_cell,
        "n_output": n_output,
        "cifg": inputs[1] < 0, "peephole": inputs[10] >= 0,
        "projection": inputs[16] >= 0, "layer_norm": len(inputs) > 21 and inputs[21] >= 0,
        "cell_clip": f32(opt.cellClip), "proj_clip": f32(opt.projClip),
        "quantization": quant,
    }
    for flag in ("cifg", "peephole", "projection", "layer_norm"):
        if layer[flag] != case[flag]:
            raise SystemExit(f"{case['name']}: the quantized model has {flag}={layer[flag]}")
    meta = {
        "format": "lowbit", "format_version": 1,
        "model": {"kind": "lstm", "precision": "integer", "layers": [layer]},
        "source": "TensorFlow Lite post-training integer quantization (8x8_16 LSTM)",
    }
    return meta, tensors, bool(opt.timeMajor)


def run_litert(flatbuffer: bytes, x_tbi: np.ndarray, time_major: bool, reference: bool):
    it = new_interpreter(flatbuffer, reference)
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    x = x_tbi if time_major else x_tbi.transpose(1, 0, 2)
    it.set_tensor(inp["index"], np.ascontiguousarray(x))
    it.invoke()
    y = it.get_tensor(out["index"])
    return np.ascontiguousarray(y if time_major else y.transpose(1, 0, 2))


def edit_quantized(flatbuffer: bytes, proj_clip=None, hidden_zp=None) -> bytes:
    """The quantized model with the LSTM's projection clip or hidden zero point replaced."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    op = model.subgraphs[0].operators[0]
    if proj_clip is not None:
        op.builtinOptions.projClip = proj_clip
    if hidden_zp is not None:
        model.subgraphs[0].tensors[op.intermediates[4]].quantization.zeroPoint = [hidden_zp]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantized_clip(clip: float, scale: float, limit: int) -> int:
    """TFLite's integer clip: clip / scale in float32, clamped, truncated; 0 = none."""
    if clip <= 0:
        return 0
    v = np.float32(clip) / np.float32(scale)
    return int(max(-limit - 1, min(limit, float(v))))


def make_case(case, out_dir: Path, seed: int):
    rng = np.random.default_rng(seed)
    if case["source"] == "keras":
        quantized = keras_quantized(case, rng)
    else:
        quantized = quantize_flatbuffer(case, float_flatbuffer(case, float_weights(case, rng)), rng)
    if "set_proj_clip" in case or "set_hidden_zp" in case:
        quantized = edit_quantized(quantized, case.get("set_proj_clip"), case.get("set_hidden_zp"))
    meta, tensors, time_major = lowbit_model(case, quantized)
    layer = meta["model"]["layers"][0]
    x = rng.integers(-128, 128, (case["T"], case["B"], layer["n_input"]), dtype=np.int16)
    x = x.astype(np.int8)
    y = run_litert(quantized, x, time_major, reference=True)
    y_opt = run_litert(quantized, x, time_major, reference=False)
    if y.dtype != np.int8 or y.shape != (case["T"], case["B"], layer["n_output"]):
        raise SystemExit(f"{case['name']}: unexpected LiteRT output {y.dtype} {y.shape}")
    name = case["name"]
    distinct = len(np.unique(y))
    if distinct < 8:
        raise SystemExit(f"{name}: LiteRT's output takes only {distinct} distinct values: "
                         "a degenerate case that would test nothing")
    write_lowbit_model(out_dir / f"{name}.lbm", meta, tensors)
    np.save(out_dir / f"{name}.in.npy", x)
    np.save(out_dir / f"{name}.out.npy", y)
    entry = {
        "name": name, "source": case["source"],
        "model": f"{name}.lbm", "input": f"{name}.in.npy", "expected": f"{name}.out.npy",
        "cifg": layer["cifg"], "peephole": layer["peephole"], "projection": layer["projection"],
        "layer_norm": layer["layer_norm"], "cell_clip": layer["cell_clip"],
        "proj_clip": layer["proj_clip"], "T": case["T"], "B": case["B"],
        "n_input": layer["n_input"], "n_cell": layer["n_cell"], "n_output": layer["n_output"],
        "input_zero_point": layer["quantization"]["input"]["zero_point"],
        "output_zero_point": layer["quantization"]["output_state"]["zero_point"],
        "hidden_zero_point": layer["quantization"]["hidden"]["zero_point"],
        "cell_scale_log2": float(np.log2(layer["quantization"]["cell_state"]["scale"])),
        "quantized_proj_clip": quantized_clip(layer["proj_clip"], layer["quantization"]["output_state"]["scale"], 127),
        "quantized_cell_clip": quantized_clip(layer["cell_clip"], layer["quantization"]["cell_state"]["scale"], 32767),
        "edited_after_quantization": {k[4:]: case[k] for k in ("set_proj_clip", "set_hidden_zp")
                                      if k in case},
        "distinct_outputs": distinct,
        "optimized_kernels_agree": bool(np.array_equal(y, y_opt)),
        "seed": seed,
    }
    print(f"{name}: T={case['T']} B={case['B']} I={layer['n_input']} C={layer['n_cell']} "
          f"P={layer['n_output']} zp(x)={entry['input_zero_point']} "
          f"zp(y)={entry['output_zero_point']} zp(h)={entry['hidden_zero_point']} "
          f"log2(s_c)={entry['cell_scale_log2']:g} distinct={distinct} "
          f"clips(cell, proj)=({entry['quantized_cell_clip']}, {entry['quantized_proj_clip']}) "
          f"optimized==reference: {entry['optimized_kernels_agree']}", file=sys.stderr)
    return entry


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "litert")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--only", default=None, help="comma-separated case names")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import tensorflow as tf

    only = set(args.only.split(",")) if args.only else None
    entries = []
    for k, case in enumerate(CASES):
        if only and case["name"] not in only:
            continue
        entries.append(make_case(case, args.out, args.seed + k))
    manifest = {
        "description": "Integer LSTM cases quantized by TensorFlow Lite and run by LiteRT's "
                       "reference kernels; regenerate with tests/litert/make_litert_goldens.py",
        "tensorflow": tf.__version__,
        "ai_edge_litert": metadata.version("ai-edge-litert"),
        "numpy": np.__version__,
        "op_resolver": "BUILTIN_REF",
        "layout": "input [T, B, n_input] int8, output [T, B, n_output] int8, time-major",
        "cases": entries,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
