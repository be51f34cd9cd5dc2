"""Contenders: every way of running the classifier that the benchmark compares, one class each.

`base` holds the interface (`Contender`, `TokenBatch`), `checkpoint_peer` what the peers built
from the training checkpoint share, then one module per stack (`torch_peers`, `optimum_peer`,
`onnxpress_contender`; CTranslate2 and OpenVINO live in `ct2_contender` / `openvino_contender`)
and `registry.from_spec` to rebuild any of them in a fresh process.
"""
from onnxpress.benchmarks.contenders.base import (
    SEED_BATCH_SIZE, STREAM_BATCH_SIZE, Contender, TokenBatch, argmax_labels, softmax,
)
from onnxpress.benchmarks.contenders.checkpoint_peer import (
    CheckpointPeer, HFTokenized, building, checkpoint_key, hf_tokenizer,
)
from onnxpress.benchmarks.contenders.onnxpress_contender import Onnxpress
from onnxpress.benchmarks.contenders.optimum_peer import OptimumORT
from onnxpress.benchmarks.contenders.registry import from_spec
from onnxpress.benchmarks.contenders.torch_peers import TorchCompiled, TorchEager

__all__ = [
    "SEED_BATCH_SIZE", "STREAM_BATCH_SIZE", "CheckpointPeer", "Contender", "HFTokenized", "Onnxpress", "OptimumORT",
    "TokenBatch", "TorchCompiled", "TorchEager", "argmax_labels", "building", "checkpoint_key", "from_spec",
    "hf_tokenizer", "softmax",
]
