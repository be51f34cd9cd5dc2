"""Translator runtime on a tiny exported model: parity with PyTorch, beam/greedy/batch invariants, loading."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from onnxpress.errors import UserError

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from toy_translator import build_toy_artifact

    return build_toy_artifact(tmp_path_factory.mktemp("toy_translator"), variants=("fp32", "int8"))


@pytest.fixture(scope="module")
def fp32(toy):
    from onnxpress.runtime.translator import Translator

    return Translator.load(toy[1], variant="fp32", device="cpu", threads=1)


SOURCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Park.", "Ein Hund trinkt Kaffee im Park.",
           "Eine Frau liest.", "Drei Kinder essen einen Apfel auf einer Bank.", "Ein Mann."]


def _reference(loaded, translator, texts, **kw):
    from onnxpress.export.translator import reference_decode

    enc = translator.source.encode(texts, with_type_ids=False)
    ids = [enc.ids[enc.offsets[i]:enc.offsets[i + 1]].tolist() for i in range(len(enc))]
    return reference_decode(loaded.model, loaded.config, ids, **kw)


def test_greedy_tokens_and_attention_match_pytorch(toy, fp32):
    loaded, _ = toy
    ref = _reference(loaded, fp32, SOURCES)
    out = fp32.translate(SOURCES, beam_size=1, return_attention=True)
    for tr, (tokens, attn) in zip(out, ref):
        assert tr.token_ids == tokens
        assert (tr.tokens[-1] == "</s>") == tr.finished
        assert tr.attention.shape == attn.shape == (len(tr.tokens), len(tr.source_tokens))
        np.testing.assert_allclose(tr.attention, attn, atol=1e-4)
    assert out[0].text == "A man rides a bike."  # the toy model learned its training pairs


@pytest.mark.parametrize("beam,penalty", [(3, 1.0), (4, 0.0)])
def test_beam_search_matches_pytorch(toy, fp32, beam, penalty):
    loaded, _ = toy
    ref = _reference(loaded, fp32, SOURCES, beam=beam, length_penalty=penalty)
    out = fp32.translate(SOURCES, beam_size=beam, return_attention=True, length_penalty=penalty)
    for tr, (tokens, attn) in zip(out, ref):
        assert tr.token_ids == tokens
        np.testing.assert_allclose(tr.attention, attn, atol=1e-4)


def test_beam_one_equals_greedy(fp32):
    greedy = fp32.translate(SOURCES, beam_size=1, return_attention=True)
    from onnxpress.runtime.beam_search import beam_search

    enc = fp32.source.encode(SOURCES, with_type_ids=False)
    rows = np.arange(len(SOURCES))
    src, mask, _ = enc.pad(rows, int(enc.lengths.max()), fp32.source.pad_id)
    decoder, hidden = fp32._start(src, mask)
    hyps = beam_search(decoder, hidden, fp32.max_lengths(enc.lengths), fp32.bos_id, fp32.eos_id, beam_size=1,
                       return_attention=True)
    for g, h in zip(greedy, hyps):
        assert g.token_ids == h.tokens
        assert g.score == pytest.approx(h.score, abs=1e-5)
        np.testing.assert_allclose(g.attention, h.attention[:, : g.attention.shape[1]], atol=1e-6)


@pytest.mark.parametrize("beam", [1, 4])
def test_batch_equals_one_by_one(fp32, beam):
    together = fp32.translate(SOURCES, beam_size=beam, return_attention=True)
    for text, batched in zip(SOURCES, together):
        (alone,) = fp32.translate([text], beam_size=beam, return_attention=True)
        assert alone.token_ids == batched.token_ids
        assert alone.score == pytest.approx(batched.score, abs=1e-4)
        np.testing.assert_allclose(alone.attention, batched.attention, atol=1e-5)


def test_small_batches_and_order(toy):
    from onnxpress.runtime.translator import Translator

    small = Translator.load(toy[1], variant="fp32", device="cpu", threads=1, max_batch_size=2)
    texts = SOURCES + ["", "   ", "\u200b\ufeff\x00"] + SOURCES[:2]  # blank: nothing visible
    out = small.translate(texts, beam_size=3)
    big = Translator.load(toy[1], variant="fp32", device="cpu", threads=1).translate(texts, beam_size=3)
    assert [t.text for t in out] == [t.text for t in big]
    assert out[len(SOURCES)].text == "" and out[len(SOURCES) + 1].tokens == []
    assert out[len(SOURCES) + 2].text == "" and out[len(SOURCES) + 2].tokens == []
    assert out[-2].text == out[0].text


def test_attention_rows_sum_to_one(fp32):
    for tr in fp32.translate(SOURCES, beam_size=4, return_attention=True):
        assert tr.source_tokens[-1] == "</s>"
        assert tr.attention.shape == (len(tr.tokens), len(tr.source_tokens))
        np.testing.assert_allclose(tr.attention.sum(axis=1), 1.0, atol=1e-5)
        assert (tr.attention >= 0).all()


def test_io_binding_path_matches_plain_run(toy, fp32):
    from onnxpress.runtime.translator import Translator

    bound = Translator.load(toy[1], variant="fp32", device="cpu", threads=1, io_binding=True)
    for beam in (1, 3):
        a = fp32.translate(SOURCES, beam_size=beam, return_attention=True)
        b = bound.translate(SOURCES, beam_size=beam, return_attention=True)
        for x, y in zip(a, b):
            assert x.token_ids == y.token_ids
            np.testing.assert_allclose(x.attention, y.attention, atol=1e-6)


def test_int8_is_auto_on_cpu_and_close(toy, fp32):
    from onnxpress.runtime.devices import Accelerators
    from onnxpress.runtime.translator import Translator

    tr = Translator.load(toy[1], accelerators=Accelerators(providers=["CPUExecutionProvider"]))
    assert tr.variant == "int8" and tr.device == "cpu"
    same = [a.token_ids == b.token_ids for a, b in zip(tr.translate(SOURCES, beam_size=1),
                                                         fp32.translate(SOURCES, beam_size=1))]
    assert sum(same) >= len(SOURCES) - 1


def test_max_length_bound(fp32):
    lengths = np.array([1, 5, 40, 200])
    bound = fp32.max_lengths(lengths)
    assert list(bound) == [min(int(2 * n) + 10, fp32.max_target_length) for n in lengths]
    fp32_short = type(fp32).__new__(type(fp32))
    fp32_short.__dict__.update(fp32.__dict__, max_length_ratio=0.0, max_length_offset=2)
    for beam in (1, 3):
        out = fp32_short.translate(SOURCES, beam_size=beam)
        assert all(len(tr.token_ids) <= 2 for tr in out)
        assert any(not tr.finished for tr in out)  # cut by the bound, not by </s>


def test_loading_errors(toy, tmp_path):
    import shutil

    from onnxpress.runtime.beam_search import MAX_BEAM_SIZE
    from onnxpress.runtime.translator import Translator

    art = tmp_path / "art"
    shutil.copytree(toy[1], art)
    with pytest.raises(UserError, match="no variant"):
        Translator.load(art, variant="int4", device="cpu")
    with pytest.raises(TypeError):
        Translator.load(art, variant="fp32", device="cpu").translate("not a list")
    loaded = Translator.load(art, variant="fp32", device="cpu")
    for beam in (0, MAX_BEAM_SIZE + 1, 100_000, 2.0, True):  # an unbounded beam could exhaust the memory
        with pytest.raises(UserError, match=f"beam_size must be an integer from 1 to {MAX_BEAM_SIZE}"):
            loaded.translate(["x"], beam_size=beam)
    assert len(loaded.translate(["x"], beam_size=MAX_BEAM_SIZE)) == 1  # the bound itself is allowed
    enc = art / "encoder.int8.onnx"
    enc.write_bytes(enc.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(UserError, match="sha256"):
        Translator.load(art, variant="int8", device="cpu")
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["task"] = "text-classification"
    (art / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="not translation"):
        Translator.load(art, variant="fp32", device="cpu")


def test_runtime_import_is_torch_free(toy):
    code = ("import sys; from onnxpress.runtime.translator import Translator; "
            f"t = Translator.load({str(toy[1])!r}, variant='int8', device='cpu'); "
            "print(t.translate(['Ein Mann fährt Fahrrad.'], beam_size=2)[0].text); "
            "bad = [m for m in ('torch', 'transformers', 'optimum') if m in sys.modules]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_concurrent_translate_calls_agree(fp32):
    from concurrent.futures import ThreadPoolExecutor

    expected = [t.token_ids for t in fp32.translate(SOURCES, beam_size=3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda i: fp32.translate(SOURCES[i:] + SOURCES[:i], beam_size=3), range(6)))
    for i, out in enumerate(results):
        assert [t.token_ids for t in out] == expected[i:] + expected[:i]


def test_session_config_entries_reach_both_graphs(toy):
    from onnxpress.runtime.translator import Translator

    translator = Translator.load(toy[1], variant="int8", device="cpu", threads=1,
                                 session_config={"session.intra_op.allow_spinning": "0"})
    for engine in (translator.encoder, translator.decoder):
        assert engine.options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert engine.describe()["session_config"]["session.intra_op.allow_spinning"] == "0"
