"""Translator export on a tiny trained model: graphs, int8 coverage, manifest, validation gate, CLIs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from onnxpress.export.translator import ExportOptions, add_coverage, build_artifact, validate  # noqa: E402
from toy_translator import ENGLISH, GERMAN, build_toy_translator  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_translator_export")
    loaded = build_toy_translator(root / "ckpt")
    # a 24-wide toy loses a few BLEU in int8 (the real model is what the 0.5 gate is for):
    # a wide gate here keeps every variant servable for the runtime/CLI tests
    options = ExportOptions(variants=("fp32", "int8", "fp16"), eval_beam=3, max_bleu_drop=20.0, progress=False)
    manifest = build_artifact(loaded, root / "art", options, calibration=GERMAN)
    add_coverage(root / "art", manifest, GERMAN, ENGLISH)
    report = validate(root / "art", loaded, manifest, options, GERMAN, ENGLISH, log=lambda _m: None)
    return loaded, root / "art", manifest, report


def test_step_equivalence_and_graph_shapes(exported):
    from onnxpress.export.translator_graphs import check_step_equivalence

    loaded, art, _, _ = exported
    assert check_step_equivalence(loaded.model, loaded.config) < 1e-5
    dec = onnx.load(str(art / "decoder_step.fp32.onnx"))
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in dec.graph.input}
    assert inputs["prev_tokens"] == ["batch", "beam"]
    assert inputs["encoder_states"][:2] == ["batch", "src_len"]
    ops = {n.op_type for n in dec.graph.node}
    assert "Gemm" not in ops and "GRU" not in ops  # cell and projections are MatMul: quantizable
    assert "Slice" not in ops and "Shape" not in ops  # gates split by constant sizes, no shape arithmetic


def test_encoder_graph_is_one_bidirectional_gru_equal_to_the_model(exported):
    from onnxpress.export.translator_graphs import check_encoder_equivalence

    loaded, art, _, _ = exported
    assert check_encoder_equivalence(loaded.model, loaded.config, art / "encoder.fp32.onnx") < 1e-5
    grus = [n for n in onnx.load(str(art / "encoder.fp32.onnx")).graph.node if n.op_type == "GRU"]
    assert len(grus) == 1 and grus[0].input[4]  # sequence_lens: each sentence reversed within its length
    assert onnx.helper.get_attribute_value(next(a for a in grus[0].attribute if a.name == "direction")) == b"bidirectional"


def test_int8_covers_the_decoder(exported):
    _, art, manifest, _ = exported
    int8 = manifest.variants["int8"]
    ops = [n.op_type for n in onnx.load(str(art / int8.files["decoder_step"])).graph.node]
    # query W·h and the GRU's hh(h) are one projection: 4 int8 MatMuls (W|hh, ih, pre_output, out)
    assert ops.count("MatMulIntegerToFloat") >= 4 and "Gemm" not in ops
    # activation scales are constants: nothing is quantized per batch
    assert "DynamicQuantizeLinear" not in ops and "QuantizeLinear" in ops
    cov = int8.method["coverage"]
    dec = cov["graphs"]["decoder_step"]
    assert dec["int8_flop_share"] > 0.9 and dec["int8_param_share"] > 0.9
    # the encoder's GRU recurrences stay fp32 (ONNX GRU op): visible in the report, not hidden
    assert cov["graphs"]["encoder"]["fp32_params_by_op"].get("GRU", 0) > 0
    assert 0 < cov["per_sentence"]["beam1"]["int8_flop_share"] < cov["per_sentence"]["beam4"]["int8_flop_share"] < 1


def test_int8_translations_do_not_depend_on_the_batch(exported):
    """Frozen activation scales: a sentence gets the same tokens and score in batches of 64 or of 2,
    greedy and beam (dynamic int8 changed 38 / 79 of 1,000 test sentences this way)."""
    from onnxpress.runtime import Translator

    _, art, manifest, _ = exported
    assert manifest.variants["int8"].method["calibration_sentences"] == len(GERMAN)
    whole = Translator.load(art, variant="int8", device="cpu", threads=1, workers=1)
    pairs = Translator.load(art, variant="int8", device="cpu", threads=1, workers=1, max_batch_size=2)
    for beam in (1, 3):
        a, b = whole.translate(GERMAN, beam_size=beam), pairs.translate(GERMAN, beam_size=beam)
        assert [t.token_ids for t in a] == [t.token_ids for t in b]
        assert max(abs(x.score - y.score) for x, y in zip(a, b)) < 1e-5


def test_manifest_contract(exported):
    from onnxpress.runtime.artifact import Artifact

    _, art, _, _ = exported
    artifact = Artifact.open(art)
    m = artifact.manifest
    assert m.task == "translation" and m.labels is None
    assert m.tokenizers == {"source": "source_tokenizer.json", "target": "target_tokenizer.json"}
    for key in ("bos_id", "eos_id", "pad_id", "unk_id", "max_target_length", "max_length_ratio",
                "source_lang", "target_lang"):
        assert key in m.extra, key
    assert (m.extra["source_lang"], m.extra["target_lang"]) == ("de", "en")
    for name, variant in m.variants.items():
        assert set(variant.files) == {"encoder", "decoder_step"}
        for f in variant.files.values():
            artifact.file(f)  # listed with a matching sha256
        assert "bleu" in variant.metrics and "greedy_token_match" in variant.parity
    assert m.variants["int8"].devices == ["cpu"] and m.variants["fp16"].devices == ["cuda"]


def test_validation_parity_and_bleu(exported):
    from onnxpress.runtime.int8_gemm import int8_kernel

    _, _, manifest, report = exported
    fp32 = manifest.variants["fp32"]
    assert fp32.parity["greedy_token_match"] == 1.0
    assert fp32.parity["attention_max_abs_diff"] < 1e-4
    assert report["pytorch"]["bleu"][1] > 50  # the toy model memorized its pairs
    assert fp32.metrics["bleu_drop"] == 0.0 and fp32.parity["beam3_token_match"] == 1.0
    assert manifest.variants["fp16"].metrics["bleu_drop"] <= 0.5
    assert manifest.variants["int8"].parity["int8_gemm"] == int8_kernel()  # the kernel the gate ran
    assert "int8_gemm" not in fp32.parity
    for name, v in manifest.variants.items():
        assert v.servable, (name, v.reason)
        assert v.metrics["pytorch_bleu"] == report["pytorch"]["bleu"][3]


def test_bleu_gate_rejects(exported, tmp_path):
    import shutil

    from onnxpress.runtime.artifact import Artifact

    loaded, art, _, _ = exported
    copy = tmp_path / "art"
    shutil.copytree(art, copy)
    manifest = Artifact.open(copy).manifest
    options = ExportOptions(variants=("fp32", "int8"), eval_beam=1, max_bleu_drop=0.0, progress=False)
    # references the model cannot match exactly, and a zero tolerance: any int8 difference fails
    validate(copy, loaded, manifest, options, GERMAN, ENGLISH[1:] + ENGLISH[:1], log=lambda _m: None)
    again = Artifact.open(copy).manifest
    int8 = again.variants["int8"]
    if int8.metrics["bleu_drop"] > 0:
        assert not int8.servable and "below PyTorch" in int8.reason
    else:
        assert int8.servable
    assert again.variants["fp32"].servable  # identical to PyTorch: drop 0 passes a 0.0 gate


def test_gate_reasons():
    from onnxpress.export.gate import gate_reasons

    assert gate_reasons("int8", 27.6, 28.0, 0.9, 0.5, 0.99) == []  # parity gates fp32 only
    (reason,) = gate_reasons("int8", 27.4, 28.0, 1.0, 0.5, 0.99)
    assert "0.60 below" in reason
    (reason,) = gate_reasons("fp32", 28.0, 28.0, 0.98, 0.5, 0.99)
    assert "98.0%" in reason


def _cli(*args, stdin=None, cwd=None):
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-m", "onnxpress", *args], input=stdin, capture_output=True,
                          timeout=300, env=env, cwd=cwd)


def test_translate_cli_stdin_keeps_lines(exported):
    _, art, _, _ = exported
    text = "Ein Mann fährt Fahrrad.\n\nZwei Hunde spielen im Park.\n".encode() + b"\xff\xfe\n" + "Ein Mann.".encode()
    out = _cli("translate", str(art), "--beam", "2", "--variant", "int8", "--device", "cpu", stdin=text)
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.decode().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 5
    assert lines[0] == "A man rides a bike." and lines[1] == "" and lines[3] == "" and lines[4]
    assert "not UTF-8" in out.stderr.decode()


def test_translate_cli_file_mode_resumes(exported, tmp_path):
    _, art, _, _ = exported
    src = tmp_path / "in.de"
    src.write_text("\n".join(GERMAN + [""] + GERMAN[:3]) + "\n")
    dst = tmp_path / "out.en"
    # a previous run that committed chunk 0 with a marker line, then died
    parts = tmp_path / "out.en.parts"
    first = _cli("translate", str(art), "--input", str(src), "--output", str(dst), "--chunk-lines", "8",
                 "--beam", "1", "--variant", "fp32", "--device", "cpu", "--no-progress")
    assert first.returncode == 0, first.stderr.decode()
    lines = dst.read_text().split("\n")[:-1]
    assert len(lines) == len(GERMAN) + 4 and lines[len(GERMAN)] == ""
    assert not parts.exists()
    again = _cli("translate", str(art), "--input", str(src), "--output", str(dst), "--variant", "fp32")
    assert again.returncode == 2 and b"already exists" in again.stderr
    # simulate an interrupted run: settings + one committed part, then rerun
    dst.unlink()
    from onnxpress.runtime.jobs.resumable import open_work
    from onnxpress.runtime.jobs.translate import TranslateConfig, TranslateJob
    from onnxpress.runtime.translator import Translator

    tr = Translator.load(art, variant="fp32", device="cpu")
    open_work(TranslateJob(tr, TranslateConfig(input=src, output=dst, chunk_lines=8, beam_size=1)))
    (parts / "part-0000000.txt").write_text("".join(f"resumed {i}\n" for i in range(8)))
    resumed = _cli("translate", str(art), "--input", str(src), "--output", str(dst), "--chunk-lines", "8",
                   "--beam", "1", "--variant", "fp32", "--device", "cpu", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr.decode()
    out = dst.read_text().split("\n")[:-1]
    assert out[:8] == [f"resumed {i}" for i in range(8)] and out[8:] == lines[8:]
    assert b"1 chunks from an earlier run" in resumed.stderr


def test_cli_errors(exported, tmp_path):
    _, art, _, _ = exported
    out = _cli("translate", str(art), "--input", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "o"))
    assert out.returncode == 2 and b"not found" in out.stderr
    out = _cli("export", "translator", str(tmp_path / "nope"), "--out", str(tmp_path / "a"))
    assert out.returncode == 2 and b"not found" in out.stderr
    out = _cli("export", "translator", str(tmp_path), "--out", str(tmp_path / "a"), "--variants", "int4")
    assert out.returncode == 2 and b"int4" in out.stderr


def test_export_cli_end_to_end(tmp_path):
    """`onnxpress export translator` on a checkpoint laid out as `train translator` writes it."""
    from safetensors.torch import save_model

    ckpt = tmp_path / "ckpt"
    loaded = build_toy_translator(ckpt, steps=30)
    loaded.config.save(ckpt / "config.json")
    save_model(loaded.model, str(ckpt / "model.safetensors"))
    (ckpt / "training.json").write_text(json.dumps({"src": "de", "tgt": "en"}))
    data = tmp_path / "multi30k"
    data.mkdir()
    for split in ("train", "test_2016_flickr"):
        (data / f"{split}.de").write_text("\n".join(GERMAN) + "\n")
        (data / f"{split}.en").write_text("\n".join(ENGLISH) + "\n")
    art = tmp_path / "art"
    args = ["export", "translator", str(ckpt), "--out", str(art), "--data", str(data), "--variants", "fp32,int8",
            "--eval-rows", "8", "--beam", "2", "--max-bleu-drop", "100", "--no-progress"]
    out = _cli(*args)
    assert out.returncode == 0, out.stderr.decode()
    summary = json.loads(out.stdout)
    assert summary["servable"] == ["fp32", "int8"]
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["variants"]["fp32"]["metrics"]["sentences"] == 8
    assert not (tmp_path / ".art.partial").exists()
    again = _cli(*args)
    assert again.returncode == 2 and b"--overwrite" in again.stderr
