"""Precision conversions shared by the exporters: int8 dynamic, int8 static (QDQ), fp16.

Each function writes one ONNX file and returns a JSON-able record of exactly how it was
built, which goes into the manifest's `Variant.method`. Model-agnostic: the classifier
exporter uses all three, the translator exporter can reuse them.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
_QUANT_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
# Static activations for CPU-only builds: asymmetric uint8 (U8S8), the operand order of MLAS's
# VNNI and AMX integer GEMM kernels; symmetric int8 wastes half the range on post-GELU activations.
CPU_STATIC_ACTIVATIONS = "uint8"


class FeedsReader(CalibrationDataReader):
    """Calibration data from a list of ready feed dicts (input name -> numpy array)."""

    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]):
        self._feeds = list(feeds)
        self._it = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return dict(next(self._it, None) or {}) or None

    def rewind(self) -> None:
        self._it = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)


def shape_preprocess(src: str | Path, dst: str | Path, optimize: bool = False, symbolic: bool = True) -> None:
    """`quant_pre_process`: symbolic shape inference so the quantizer can type every tensor.

    Needed before quantizing a graph fused by the transformer optimizer: plain ONNX shape
    inference cannot type com.microsoft ops (Attention, SkipLayerNormalization...), and
    `quantize_dynamic` then fails with "Unable to find data type for weight_name=..."
    (feasibility.md, section 2).
    """
    src, dst = Path(src).resolve(), Path(dst).resolve()
    with _scratch_cwd():
        quant_pre_process(str(src), str(dst), skip_optimization=not optimize, skip_symbolic_shape=not symbolic)


@contextlib.contextmanager
def _scratch_cwd():
    """Run in a temporary working directory, restored afterwards.

    When symbolic shape inference gives up, onnxruntime saves `sym_shape_infer_temp.onnx` and a
    model-sized external-data file into the current directory before raising; the exporter
    catches that failure and tries its next remedy, so the files would be left in the user's folder.
    (Changes the process's cwd: exports run on one thread.)
    """
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="onnxpress-shape-") as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(previous)


def quantize_int8_dynamic(
    src: str | Path,
    dst: str | Path,
    *,
    per_channel: bool = True,
    nodes_to_exclude: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    reduce_range: bool = False,
    preprocess: bool = True,
) -> dict[str, Any]:
    """Dynamic int8: int8 weights, activations quantized at run time (MatMulInteger, QAttention...)."""
    with tempfile.TemporaryDirectory(prefix="onnxpress-q-") as tmp:
        model = src
        if preprocess:
            model = Path(tmp) / "pre.onnx"
            shape_preprocess(src, model)
        quantize_dynamic(
            str(model),
            str(dst),
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(nodes_to_exclude),
        )
    return {
        "kind": "dynamic",
        "tool": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "int8",
        "activations": "uint8, quantized at run time",
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "op_types": list(op_types) if op_types else "default (all supported)",
        "nodes_excluded": list(nodes_to_exclude),
        "preprocess": "quant_pre_process(skip_optimization=True)" if preprocess else None,
    }


def quantize_int8_static(
    src: str | Path,
    dst: str | Path,
    calibration: CalibrationDataReader,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    nodes_to_exclude: Sequence[str] = (),
    op_types: Sequence[str] = ("MatMul",),
    activation_type: str = "int8",
    percentile: float = 99.999,
    num_bins: int | None = None,
    preprocess: bool = True,
) -> dict[str, Any]:
    """Static int8 in QDQ format, activation ranges calibrated on `calibration`.

    Defaults follow ORT's advice for QDQ (S8S8, symmetric activations), which is also what
    the TensorRT execution provider consumes.
    """
    key = method.lower()
    if key not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r} (choose from {', '.join(CALIBRATION_METHODS)})")
    act = _QUANT_TYPES[activation_type]
    extra: dict[str, Any] = {"ActivationSymmetric": act == QuantType.QInt8, "WeightSymmetric": True}
    if key == "percentile":
        extra["CalibPercentile"] = percentile
    with tempfile.TemporaryDirectory(prefix="onnxpress-q-") as tmp:
        model = src
        if preprocess:
            model = Path(tmp) / "pre.onnx"
            # The unfused graph holds only standard ops: ONNX shape inference types it, and
            # the symbolic pass gives up on BERT's mask arithmetic ("Incomplete symbolic...").
            shape_preprocess(src, model, optimize=True, symbolic=False)
        calibration.rewind()
        cache = None
        if key == "entropy":
            # quantize_static cannot pass num_bins, and its Entropy default (128 bins for 128
            # quantized bins) leaves one candidate threshold: the min/max range, i.e. MinMax again.
            # 512 bins: TensorRT's 2048 made the KL search take minutes per model on 2 cores.
            cache = Path(tmp) / "ranges.json"
            _calibrate_entropy(model, calibration, op_types, cache, num_bins or 512)
        with contextlib.redirect_stdout(sys.stderr):  # the histogram calibrators print progress
            quantize_static(
                str(model),
                str(dst),
                None if cache else calibration,
                calibration_cache_path=cache,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types),
                per_channel=per_channel,
                activation_type=act,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(nodes_to_exclude),
                calibrate_method=CALIBRATION_METHODS[key],
                extra_options=extra,
            )
    record: dict[str, Any] = {
        "kind": "static",
        "tool": "onnxruntime.quantization.quantize_static",
        "format": "QDQ",
        "calibration_method": key,
        "calibration_batches": len(calibration) if hasattr(calibration, "__len__") else None,
        "weight_type": "int8",
        "activation_type": activation_type,
        "symmetric_activations": extra["ActivationSymmetric"],
        "per_channel": per_channel,
        "op_types": list(op_types),
        "nodes_excluded": list(nodes_to_exclude),
        "preprocess": "quant_pre_process(skip_optimization=False, skip_symbolic_shape=True)" if preprocess else None,
    }
    if key == "percentile":
        record["percentile"] = percentile
    if key == "entropy":
        record["histogram_bins"] = num_bins or 512
        record["quantized_bins"] = 128
    return record


def _calibrate_entropy(
    model: str | Path, reader: CalibrationDataReader, op_types: Sequence[str], cache: Path, num_bins: int
) -> None:
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="onnxpress-calib-") as tmp, contextlib.redirect_stdout(sys.stderr):
        calibrator = create_calibrator(
            str(model), list(op_types), augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": num_bins, "num_quantized_bins": 128, "symmetric": False},
        )
        calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), cache)
        del calibrator  # holds an InferenceSession on the temp augmented model


def convert_fp16(
    src: str | Path, dst: str | Path, *, keep_io_types: bool = True, op_block_list: Sequence[str] | None = None
) -> dict[str, Any]:
    """fp16 weights and compute (for GPUs), fp32 inputs/outputs kept so callers need not change."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    kwargs: dict[str, Any] = {"keep_io_types": keep_io_types}
    if op_block_list:
        kwargs["op_block_list"] = list(op_block_list)
    model.convert_float_to_float16(**kwargs)
    model.save_model_to_file(str(dst))
    return {
        "kind": "fp16",
        "tool": "onnxruntime.transformers OnnxModel.convert_float_to_float16",
        "keep_io_types": keep_io_types,
        "op_block_list": list(op_block_list) if op_block_list else "default",
    }


def float16_summary(path: str | Path) -> dict[str, Any]:
    """Structure check of an fp16 graph: initializer dtypes and IO dtypes."""
    model = onnx.load(str(path))
    dtypes = [init.data_type for init in model.graph.initializer]
    float_inits = [d for d in dtypes if d in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    fp16 = sum(d == onnx.TensorProto.FLOAT16 for d in dtypes)

    def io_types(values) -> dict[str, str]:
        return {v.name: onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name for v in values}

    return {
        "float16_initializers": fp16,
        "float_initializers": len(float_inits),
        "inputs": io_types(model.graph.input),
        "outputs": io_types(model.graph.output),
    }


def quantization_summary(path: str | Path) -> dict[str, Any]:
    """How much of a graph is quantized: integer/QDQ weight nodes vs. weight MatMuls left in float."""
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    integer_ops = ("MatMulInteger", "QAttention", "QEmbedLayerNormalization", "QGemm", "QLinearMatMul")
    qdq_weights = sum(1 for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers)
    float_weights = sum(
        1 for n in graph.node if n.op_type in ("MatMul", "Gemm", "Attention") and len(n.input) > 1
        and n.input[1] in initializers
    )
    return {
        "quantized_weight_nodes": qdq_weights + sum(ops.get(op, 0) for op in integer_ops),
        "float_weight_matmuls": float_weights,
        "ops": {op: ops[op] for op in (*integer_ops, "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear")
                if ops.get(op)},
    }
