"""The OpenVINO peer in its throughput mode: an AsyncInferQueue whose callbacks finish in any order
must still put every batch's results on that batch's rows."""
from __future__ import annotations

import random

import numpy as np
import pytest

from tiny_classifier import MAX_LENGTH, WORDS

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def peer(tiny_checkpoint, tmp_path_factory):
    from onnxpress.benchmarks.openvino_contender import OpenVINOInt8

    cache = tmp_path_factory.mktemp("ov_cache")
    contender = OpenVINOInt8(tiny_checkpoint, MAX_LENGTH, cache_dir=cache)
    rng = random.Random(1)
    calibration = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 25))) for _ in range(16)]
    contender.calibration_file.parent.mkdir(parents=True, exist_ok=True)
    contender.calibration_file.write_text("\n".join(calibration) + "\n", encoding="utf-8")
    contender.prepare()
    contender.load(threads=2)
    yield contender
    contender.close()


def test_async_stream_puts_every_result_on_its_row(peer):
    rng = random.Random(2)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) for _ in range(50)]
    peer.stream_batch_size = 4  # 13 requests in flight over the plugin's streams
    streamed = peer.stream_proba(texts)
    # the same sorted batches through the synchronous request, one after the other
    order = np.argsort(peer.token_lengths(texts), kind="stable")
    expected = np.empty_like(streamed)
    for i in range(0, len(texts), peer.stream_batch_size):
        rows = order[i:i + peer.stream_batch_size]
        expected[rows] = peer.proba([texts[j] for j in rows])
    assert str(peer.compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT" and peer.threads()["compute"] == 2
    np.testing.assert_allclose(streamed, expected, atol=1e-5)
    # texts differ by more than that, so a result on a wrong row would fail the check above
    assert np.abs(expected[:, None, :] - expected[None, :, :]).max() > 1e-3
