"""The translator as two ONNX graphs (encoder, beam-axis decoder step) and their variants.

`BeamDecoderStep` is the model's `decode_step` with a beam axis: prev_tokens [B,K],
hidden [B,K,H] against encoder states [B,S,E] shared by the K beams, so the runtime never
repeats encoder states per beam. It reuses the model's own modules (embedding, GRU cell,
output layers) and only re-broadcasts the attention; `check_step_equivalence` verifies it
against `model.decode_step`. Because every Linear sees a 3-D input, the exporter writes
them as MatMul + Add (not Gemm), which ONNX Runtime's dynamic int8 quantizer covers.
The encoder graph is written from the model's weights (`write_encoder_graph`: one
bidirectional GRU node), checked against `model.encode` by `check_encoder_equivalence`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from onnxpress.runtime.translator import DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS

DEFAULT_OPSET = 17
NEG_INF = -1e9


class EncoderGraph(nn.Module):
    """src_ids, src_mask [B,S] -> encoder_states [B,S,E], keys [B,S,A], hidden [B,H] (the PyTorch
    module; the exported graph is `write_encoder_graph`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, src_ids: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.encode(src_ids, src_mask)


class BeamDecoderStep(nn.Module):
    """One decoder step for K beams per sentence, encoder states shared across beams.

    Written for a lean graph: the attention query `W h` and the GRU's `hh(h)` read the same
    hidden state, so they are one projection (one MatMul, one activation quantization in int8);
    the gates split with constant sizes (one Split, not a Shape/Slice chain per gate), and the
    r and z gates share one Sigmoid. The arithmetic is `GRUCellLinear`'s.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        att, cell = model.attention, model.cell
        self.attn_dim, self.hidden_size = att.W.out_features, cell.hidden_size
        with torch.no_grad():
            query_hh = nn.Linear(cell.hh.in_features, self.attn_dim + 3 * self.hidden_size)
            query_hh.weight.copy_(torch.cat([att.W.weight, cell.hh.weight]))
            query_hh.bias.copy_(torch.cat([torch.zeros(self.attn_dim), cell.hh.bias]))
        self.query_hh = query_hh

    def forward(self, prev_tokens: Tensor, hidden: Tensor, states: Tensor, keys: Tensor,
                src_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m, h = self.model, self.hidden_size
        emb = m.tgt_embed(prev_tokens)  # [B,K,Em]
        query, hh = self.query_hh(hidden).split([self.attn_dim, 3 * h], dim=-1)  # [B,K,A], [B,K,3H]
        energy = m.attention.v(torch.tanh(keys.unsqueeze(1) + query.unsqueeze(2))).squeeze(-1)  # [B,K,S]
        energy = energy.masked_fill(~src_mask.to(torch.bool).unsqueeze(1), NEG_INF)
        attn = torch.softmax(energy, dim=-1)
        context = torch.matmul(attn, states)  # [B,K,E]: one batched matmul, no per-beam copy
        x_rz, x_n = m.cell.ih(torch.cat([emb, context], dim=-1)).split([2 * h, h], dim=-1)
        h_rz, h_n = hh.split([2 * h, h], dim=-1)
        r, z = torch.sigmoid(x_rz + h_rz).split([h, h], dim=-1)
        n = torch.tanh(x_n + r * h_n)
        new_hidden = n + z * (hidden - n)
        logits = m._logits(new_hidden, context, emb)
        return torch.log_softmax(logits, dim=-1), new_hidden, attn


def write_encoder_graph(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write `model.encode` as one ONNX graph built from the model's weights: a single
    bidirectional GRU node with `sequence_lens`, so ONNX Runtime runs both directions in one
    kernel and reverses each sentence within its own length itself, instead of the traced
    graph's index arithmetic around two GRUs (`reverse_padded`). `check_encoder_equivalence`
    verifies it against the model."""
    from onnx import TensorProto, helper, numpy_helper

    enc, att = model.encoder, model.attention
    hidden = enc.fwd.hidden_size

    def zrh(w: Tensor) -> np.ndarray:  # PyTorch's gate order r, z, n -> ONNX's z, r, h
        r, z, n = w.detach().float().numpy().reshape(3, hidden, -1)
        return np.concatenate([z, r, n]).squeeze(-1) if w.dim() == 1 else np.concatenate([z, r, n])

    def both(name: str) -> np.ndarray:
        return np.stack([zrh(getattr(enc.fwd, name)), zrh(getattr(enc.bwd, name))])

    def t(x: Tensor) -> np.ndarray:
        return x.detach().float().numpy()

    weights = {
        "embed": t(enc.embed.weight), "gru_W": both("weight_ih_l0"), "gru_R": both("weight_hh_l0"),
        "gru_B": np.concatenate([both("bias_ih_l0"), both("bias_hh_l0")], axis=1),
        "U_weight": t(att.U.weight).T.copy(), "U_bias": t(att.U.bias),
        "init_weight": t(model.init_hidden.weight).T.copy(), "init_bias": t(model.init_hidden.bias),
        "axis1": np.array([1], np.int64), "axis2": np.array([2], np.int64), "one": np.array(1, np.int32),
        "flat_last": np.array([0, 0, -1], np.int64), "flat_row": np.array([0, -1], np.int64),
    }
    node = helper.make_node
    nodes = [
        node("Gather", ["embed", "src_ids"], ["emb"]),
        node("Transpose", ["emb"], ["x"], perm=[1, 0, 2]),  # [S,B,E]
        node("ReduceSum", ["src_mask", "axis1"], ["length64"], keepdims=0) if opset >= 13
        else node("ReduceSum", ["src_mask"], ["length64"], axes=[1], keepdims=0),
        node("Cast", ["length64"], ["length32"], to=TensorProto.INT32),
        node("Max", ["length32", "one"], ["lengths"]),  # an empty source still reads its first position
        node("GRU", ["x", "gru_W", "gru_R", "gru_B", "lengths"], ["y", "y_last"], name="encoder_gru",
             direction="bidirectional", hidden_size=hidden, linear_before_reset=1),
        node("Transpose", ["y"], ["y_bsdh"], perm=[2, 0, 1, 3]),  # [S,2,B,H] -> [B,S,2,H]
        node("Reshape", ["y_bsdh", "flat_last"], ["y_flat"]),  # [B,S,2H]: forward then backward
        node("Cast", ["src_mask"], ["mask_f"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
        node("Mul", ["y_flat", "mask3"], ["encoder_states"]),
        node("MatMul", ["encoder_states", "U_weight"], ["keys_mm"]),
        node("Add", ["keys_mm", "U_bias"], ["keys"]),
        node("Transpose", ["y_last"], ["last_bdh"], perm=[1, 0, 2]),
        node("Reshape", ["last_bdh", "flat_row"], ["final"]),  # [B,2H]
        node("MatMul", ["final", "init_weight"], ["init_mm"]),
        node("Add", ["init_mm", "init_bias"], ["init_pre"]),
        node("Tanh", ["init_pre"], ["hidden"]),
    ]
    ints = lambda *dims: helper.make_tensor_value_info(dims[0], TensorProto.INT64, list(dims[1:]))  # noqa: E731
    floats = lambda *dims: helper.make_tensor_value_info(dims[0], TensorProto.FLOAT, list(dims[1:]))  # noqa: E731
    graph = helper.make_graph(
        nodes, "encoder", [ints(name, "batch", "src_len") for name in ENCODER_INPUTS],
        [floats("encoder_states", "batch", "src_len", 2 * hidden), floats("keys", "batch", "src_len", att.U.out_features),
         floats("hidden", "batch", model.init_hidden.out_features)],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in weights.items()])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                   producer_name="onnxpress", ir_version=8)
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))
    return Path(path)


def check_encoder_equivalence(model: nn.Module, cfg: Any, path: str | Path, atol: float = 1e-5) -> float:
    """Max abs difference between the encoder graph at `path` (ONNX Runtime, CPU) and `model.encode`."""
    import onnxruntime as ort

    src, mask, _ = _samples(cfg, batch=3, length=7)
    mask[2, 1:] = 0  # one token only
    src[2, 1:] = cfg.pad_id
    with torch.no_grad():
        ref = model.encode(src, mask)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = sess.run(list(ENCODER_OUTPUTS), {"src_ids": src.numpy(), "src_mask": mask.numpy()})
    diff = max(float(np.abs(o - r.numpy()).max()) for o, r in zip(ours, ref))
    if diff > atol:
        raise RuntimeError(f"encoder graph differs from model.encode by {diff:.2e}")
    return diff


def _samples(cfg: Any, batch: int = 2, beams: int = 3, length: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, max(cfg.src_vocab_size, 5), (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, length // 2:] = 0  # a padded row, so no shape collapses to a constant
    src[1, length // 2:] = cfg.pad_id
    prev = torch.randint(4, max(cfg.tgt_vocab_size, 5), (batch, beams), generator=g)
    return src, mask, prev


def check_step_equivalence(model: nn.Module, cfg: Any, atol: float = 1e-5) -> float:
    """Max abs difference between BeamDecoderStep and `model.decode_step` on random inputs."""
    src, mask, prev = _samples(cfg, batch=3, beams=4)
    mask[2, 2:] = 0
    with torch.no_grad():
        states, keys, hidden = model.encode(src, mask)
        b, k = prev.shape
        hid = hidden.unsqueeze(1).expand(b, k, -1).contiguous()
        hid = hid + 0.1 * torch.randn(hid.shape, generator=torch.Generator().manual_seed(1))
        ours = BeamDecoderStep(model)(prev, hid, states, keys, mask)
        flat = lambda t: t.repeat_interleave(k, dim=0)  # noqa: E731
        ref = model.decode_step(prev.reshape(-1), hid.reshape(b * k, -1), flat(states), flat(keys), flat(mask))
    diff = max(float((o.reshape(r.shape) - r).abs().max()) for o, r in zip(ours, ref))
    if diff > atol:
        raise RuntimeError(f"beam-axis decoder step differs from model.decode_step by {diff:.2e}")
    return diff


def export_graphs(model: nn.Module, cfg: Any, out_dir: str | Path, opset: int = DEFAULT_OPSET,
                  suffix: str = "fp32") -> dict[str, Path]:
    """Write encoder.<suffix>.onnx and decoder_step.<suffix>.onnx (fp32) into `out_dir`."""
    out_dir = Path(out_dir)
    model = model.eval()
    src, mask, prev = _samples(cfg)
    paths = {"encoder": out_dir / f"encoder.{suffix}.onnx", "decoder_step": out_dir / f"decoder_step.{suffix}.onnx"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings, legacy-exporter notice
        states, keys, hidden = model.encode(src, mask)
        write_encoder_graph(model, paths["encoder"], opset)
        beams = prev.shape[1]
        hid = hidden.unsqueeze(1).expand(-1, beams, -1).contiguous()
        axes_bk = {0: "batch", 1: "beam"}
        axes_bs = {0: "batch", 1: "src_len"}
        torch.onnx.export(
            BeamDecoderStep(model).eval(), (prev, hid, states, keys, mask), str(paths["decoder_step"]),
            input_names=list(DECODER_INPUTS[:5]), output_names=list(DECODER_OUTPUTS[:3]),  # TopK added after
            dynamic_axes={"prev_tokens": axes_bk, "hidden": axes_bk, "encoder_states": axes_bs, "keys": axes_bs,
                          "src_mask": axes_bs, "log_probs": axes_bk, "new_hidden": axes_bk,
                          "attention": {0: "batch", 1: "beam", 2: "src_len"}},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    for path in paths.values():
        onnx.checker.check_model(str(path))
        gemm_to_matmul(path)
    add_topk(paths["decoder_step"])
    return paths


def gemm_to_matmul(path: str | Path) -> int:
    """Rewrite `Gemm(A, W, C)` with a constant W as `MatMul(A, W') + C`, in place; returns the count.

    A Linear on a 2-D input exports as Gemm, which the dynamic quantizer skips; as MatMul
    its weight is quantized like every other projection.
    """
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    nodes, count = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in inits or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            weight = np.ascontiguousarray(weight.T)
        w_name = f"{node.input[1]}_matmul"
        graph.initializer.append(numpy_helper.from_array(weight, w_name))
        if uses[node.input[1]] == 1:
            graph.initializer.remove(inits[node.input[1]])
        out = node.output[0]
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{out}_matmul" if has_bias else out
        nodes.append(helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{node.name}_MatMul"))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [out], name=f"{node.name}_Add"))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return count


def add_topk(path: str | Path) -> None:
    """Append `TopK(log_probs, topk)` to the decoder step graph, in place.

    The search needs only the best few continuations per beam; selecting them in the graph
    returns [batch, beam, k] instead of the [batch, beam, vocab] log-probabilities, which
    would cost more to copy and rank in numpy than the whole decoder step. ONNX TopK puts the
    lower index first among equal values, like torch.argmax/topk.
    """
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    graph.input.append(helper.make_tensor_value_info("topk", TensorProto.INT64, [1]))
    graph.node.append(helper.make_node("TopK", ["log_probs", "topk"], ["topk_log_probs", "topk_ids"],
                                       name="search_topk", axis=-1, largest=1, sorted=1))
    graph.output.append(helper.make_tensor_value_info("topk_log_probs", TensorProto.FLOAT, ["batch", "beam", "k"]))
    graph.output.append(helper.make_tensor_value_info("topk_ids", TensorProto.INT64, ["batch", "beam", "k"]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def narrow_matmuls(path: str | Path, min_columns: int = 16) -> list[str]:
    """MatMul nodes whose constant weight has fewer than `min_columns` output columns.

    The attention's scoring vector `v` ([A, 1]) is one: quantizing it would add a
    DynamicQuantizeLinear pass over the whole [batch, beam, src_len, A] energy tensor to save
    a negligible matrix-vector product, so it stays fp32.
    """
    model = onnx.load(str(path))
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and n.input[1] in shapes and shapes[n.input[1]][-1] < min_columns]


def convert_fp16(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """fp16 weights and compute, fp32 inputs/outputs (the runtime feeds float32 either way)."""
    from onnxpress.export.quantize import convert_fp16 as shared_convert_fp16

    return shared_convert_fp16(src, dst, keep_io_types=True)
