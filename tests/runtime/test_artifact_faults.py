"""Broken artifacts are refused at load with one `UserError` naming the file and the fix.

Includes a property test: any JSON in manifest.json gives a manifest or a `UserError`, never
another exception, and a loadable manifest never crashes the classifier's loading either.
"""
from __future__ import annotations

import copy
import json
import re
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxpress.errors import UserError
from onnxpress.runtime import Classifier
from onnxpress.runtime.artifact import Artifact, Manifest

FIX = r"(re-export|upgrade onnxpress|copy the)"


def edit_manifest(root, fn) -> None:
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    fn(data)  # edits in place
    path.write_text(json.dumps(data))


def refused(root, *patterns: str, variant: str = "fp32") -> str:
    with pytest.raises(UserError) as failure:
        Classifier.load(root, variant=variant, device="cpu", threads=1)
    message = str(failure.value)
    assert "\n" not in message
    for pattern in patterns + (FIX,):
        assert re.search(pattern, message), (pattern, message)
    return message


@pytest.mark.parametrize("change,expected", [
    (lambda d: d.update(variants=[]), r"manifest\.json: variants .*must be an object, not array"),
    (lambda d: d.update(variants={}), r"manifest\.json: variants is empty"),
    (lambda d: d.update(extra=None), r"manifest\.json: extra must be an object, not null"),
    (lambda d: d["files"]["model.onnx"].pop("size"), r"manifest\.json: files\['model\.onnx'\]\.size is missing"),
    (lambda d: d["variants"]["fp32"].update(devices="cpu"), r"variants\.fp32\.devices must be an array"),
    (lambda d: d.update(max_length="128"), r"max_length must be an integer, not string"),
    (lambda d: d.update(format_version=0), r"format_version 0 is not supported"),
    (lambda d: d.update(format_version="1"), r"format_version '1' is not supported"),
    (lambda d: d["variants"].update({"\n": None}), r"variants\.'\\n' must be an object, not null"),
])
def test_malformed_manifests_are_user_errors(artifact_copy, change, expected):
    edit_manifest(artifact_copy, change)
    refused(artifact_copy, expected)


def test_an_output_without_a_shape_takes_the_label_count_from_the_graph(artifact_copy):
    edit_manifest(artifact_copy, lambda d: d["outputs"][0].update(shape=[]))
    clf = Classifier.load(artifact_copy, variant="fp32", device="cpu", threads=1, verify=False)
    assert clf.predict_proba(["a text"]).shape == (1, len(clf.labels))


def test_manifest_holding_an_array_refused(artifact_copy):
    (artifact_copy / "manifest.json").write_text("[]")
    refused(artifact_copy, r"manifest\.json: holds an array, not an onnxpress manifest")


def test_manifest_from_a_newer_onnxpress_says_upgrade(artifact_copy):
    edit_manifest(artifact_copy, lambda d: d.update(format_version=2, versions={"onnxpress": "9.1.0"}))
    refused(artifact_copy, r"manifest\.json", "format_version 2 was written by onnxpress 9.1.0", "upgrade onnxpress")


def test_unknown_fields_from_a_newer_exporter_are_ignored(artifact_copy):
    def add_fields(d):
        d["signature"] = "x"
        d["variants"]["fp32"]["new_field"] = 1

    edit_manifest(artifact_copy, add_fields)
    assert Classifier.load(artifact_copy, variant="fp32", device="cpu", threads=1).labels


def test_truncated_model_refused(artifact_copy):
    path = artifact_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:2000])
    refused(artifact_copy, "model.onnx has 2000 bytes", "truncated")


def test_tampered_model_refused(artifact_copy):
    path = artifact_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    refused(artifact_copy, "model.onnx does not match its sha256", "tampered")


def test_wrong_sha256_in_manifest_refused(artifact_copy):
    edit_manifest(artifact_copy, lambda d: d["files"]["model.onnx"].update(sha256="0" * 64))
    refused(artifact_copy, "model.onnx does not match its sha256")


def test_damaged_model_with_matching_manifest_refused_by_onnxruntime(artifact_copy):
    path = artifact_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:2000])
    art = Artifact.open(artifact_copy)
    art.manifest.save(artifact_copy)  # the manifest now agrees with the damaged file
    refused(artifact_copy, "cannot load .*model.onnx")


def test_missing_tokenizer_refused(artifact_copy):
    (artifact_copy / "tokenizer.json").unlink()
    refused(artifact_copy, "artifact file missing: .*tokenizer.json", "copy the complete artifact")
    edit_manifest(artifact_copy, lambda d: d["files"].pop("tokenizer.json"))
    refused(artifact_copy, "tokenizer.json is not listed in .*manifest.json")
    edit_manifest(artifact_copy, lambda d: d.update(tokenizers={}))
    refused(artifact_copy, "names no 'text' tokenizer")


def test_a_manifest_naming_a_file_outside_the_artifact_is_refused(artifact_copy):
    outside = artifact_copy.parent / "elsewhere.json"
    outside.write_bytes((artifact_copy / "tokenizer.json").read_bytes())

    def point_outside(d):
        d["files"]["../elsewhere.json"] = d["files"]["tokenizer.json"]
        d["tokenizers"] = {"text": "../elsewhere.json"}

    edit_manifest(artifact_copy, point_outside)
    refused(artifact_copy, "names '../elsewhere.json', not a file of the artifact folder")


def test_unreadable_manifest_json_refused(artifact_copy):
    (artifact_copy / "manifest.json").write_bytes(b"\xff\xfe{" + b"[" * 100_000)
    refused(artifact_copy, r"cannot read .*manifest\.json")


# -- property tests ---------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False, width=32) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def valid_manifest(artifact_dir) -> dict:
    return json.loads((artifact_dir / "manifest.json").read_text())


def _paths(data, prefix=()):
    """Every (container, key) position in a JSON document."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


def _mutate(data: dict, draw) -> dict:
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=JSON)
def test_any_json_gives_a_manifest_or_a_user_error(data):
    try:
        Manifest.from_dict(data)
    except UserError as exc:
        assert "\n" not in str(exc) and "manifest.json" in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(draw=st.data())
def test_mutated_manifests_give_a_manifest_or_a_user_error(valid_manifest, draw):
    try:
        Manifest.from_dict(_mutate(valid_manifest, draw.draw))
    except UserError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(draw=st.data())
def test_mutated_manifests_never_crash_loading(artifact_dir, valid_manifest, tmp_path_factory, draw):
    root = tmp_path_factory.mktemp("mutated")
    shutil.copytree(artifact_dir, root, dirs_exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(_mutate(valid_manifest, draw.draw)))
    try:
        clf = Classifier.load(root, device="cpu", threads=1)
        clf.predict(["stocks rally", ""])
    except UserError as exc:
        assert "\n" not in str(exc)
