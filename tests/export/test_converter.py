"""The export skeleton on a one-node model: staging, overwrite rules, stamping, runtime validation, cleanup."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from onnxpress.errors import UserError
from onnxpress.export.converter import Converter, options_from_args, parse_variants
from onnxpress.runtime.artifact import Artifact, Manifest, TensorSpec, Variant


def write_doubler(path: Path) -> None:
    """y = x + x, float32 [batch, 4]."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])], "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))


class DoublerConverter(Converter[float]):
    """Exports "multiply by `factor`"; validation runs the file through the runtime's Engine."""

    def __init__(self, factor: float = 2.0, fail_in: str | None = None, **kw: Any):
        super().__init__(log=lambda _m: None, **kw)
        self.factor, self.fail_in = factor, fail_in

    def _load(self) -> float:
        return self.factor

    def _write(self, factor: float, staging: Path, work: Path) -> Manifest:
        write_doubler(staging / "model.onnx")
        return Manifest(task="text-classification", max_length=4, tokenizers={},
                        inputs=[TensorSpec("x", "float32", ["batch", 4])],
                        outputs=[TensorSpec("y", "float32", ["batch", 4])],
                        variants={"fp32": Variant(files={"model": "model.onnx"}, precision="fp32", devices=["cpu"],
                                                  opset=17)})

    def _validate(self, factor: float, staging: Path, manifest: Manifest) -> dict[str, Any]:
        from onnxpress.runtime.engine import Engine, EngineConfig

        if self.fail_in == "validate":
            raise UserError("validation failed")
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        (y,) = Engine(staging / "model.onnx", EngineConfig(device="cpu", threads=1)).run({"x": x})
        diff = float(np.abs(y - factor * x).max())
        variant = manifest.variants["fp32"]
        variant.parity = {"max_abs_diff": diff}
        if diff > 1e-6:
            variant.servable, variant.reason = False, f"differs from the source by {diff:g}"
        return {"max_abs_diff": diff}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_convert_stages_validates_and_stamps(tmp_path):
    result = DoublerConverter().convert(tmp_path / "art")
    art = Artifact.open(tmp_path / "art")
    assert result.out == tmp_path / "art" and result.servable == ["fp32"] and result.report["max_abs_diff"] == 0
    assert art.manifest.format_version == 1 and art.manifest.created and "onnxruntime" in art.manifest.versions
    art.file("model.onnx")  # hashed into the manifest
    assert leftovers(tmp_path) == []


def test_the_gate_verdict_reaches_the_manifest(tmp_path):
    result = DoublerConverter(factor=3.0).convert(tmp_path / "art")
    variant = Artifact.open(tmp_path / "art").manifest.variants["fp32"]
    assert result.servable == [] and not variant.servable and "differs" in variant.reason


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "art"
    DoublerConverter().convert(out)
    with pytest.raises(UserError, match="--overwrite"):
        DoublerConverter().convert(out)
    first = Artifact.open(out).manifest.created
    DoublerConverter(overwrite=True).convert(out)
    assert Artifact.open(out).manifest.created >= first and leftovers(tmp_path) == []


def test_never_replaces_a_directory_that_is_not_an_artifact(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="not an onnxpress artifact"):
        DoublerConverter(overwrite=True).convert(out)
    assert (out / "notes.txt").read_text() == "keep"


def test_a_failed_export_leaves_the_previous_artifact_untouched(tmp_path):
    out = tmp_path / "art"
    DoublerConverter().convert(out)
    before = (out / "manifest.json").read_text()
    with pytest.raises(UserError, match="validation failed"):
        DoublerConverter(fail_in="validate", overwrite=True).convert(out)
    assert (out / "manifest.json").read_text() == before and leftovers(tmp_path) == []


def test_parse_variants():
    assert parse_variants("int8, fp32,int8", ("fp32", "int8")) == ["int8", "fp32"]
    with pytest.raises(UserError, match="unknown variant 'int4'"):
        parse_variants(["fp32", "int4"], ("fp32", "int8"))
    with pytest.raises(UserError, match="no variants"):
        parse_variants(" , ", ("fp32",))


def test_options_from_args_maps_dests_to_fields():
    from onnxpress.commands import export_classifier, export_translator
    from onnxpress.export.classifier import ExportOptions as ClassifierOptions
    from onnxpress.export.classifier_data import AgNewsSample
    from onnxpress.export.translator import ExportOptions as TranslatorOptions

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    export_classifier.register(sub)
    export_translator.register(sub)
    # the old flag names are hidden aliases of the new ones
    args = parser.parse_args(["translator", "ck", "--out", "o", "--beam", "2", "--force", "--data", "d",
                              "--eval-rows", "8", "--threads", "3"])
    opt = options_from_args(TranslatorOptions, args)
    assert (opt.eval_beam, opt.overwrite, opt.data_dir, opt.limit, opt.threads) == (2, True, "d", 8, 3)
    args = parser.parse_args(["classifier", "ck", "--out", "o", "--force", "--data", "d", "--eval-rows", "5",
                              "--screen-rows", "0", "--threads", "1"])
    opt = options_from_args(ClassifierOptions, args)
    assert opt.overwrite and opt.threads == 1 and opt.screen_rows == 0 and opt.variants == "fp32,int8"
    assert options_from_args(AgNewsSample, args) == AgNewsSample(data="d", eval_rows=5, calibration_size=512, seed=0)
