"""The dynamic batcher on its own (no server): merging, ordering, backpressure, deadlines, drain."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from server_fixtures import GERMAN, TEXTS, TRANSLATOR
from onnxpress.runtime.batcher import Batcher, BatcherConfig, BatchStats, Closed, DeadlineExceeded, Overloaded


class Gate:
    """An observer that holds the worker inside its first group until released (to fill the queue)."""

    def __init__(self):
        self.stats = BatchStats()
        self.runs: list[tuple[int, int | None]] = []  # (rows, padded tokens) of each model run
        self.entered = threading.Event()
        self.release = threading.Event()

    def queued(self, seconds):
        self.entered.set()
        assert self.release.wait(10)
        self.stats.queued(seconds)

    def executed(self, rows, tokens):
        self.runs.append((rows, tokens))
        self.stats.executed(rows, tokens)

    def computed(self, seconds, requests, rows):
        self.stats.computed(seconds, requests, rows)


@pytest.fixture(scope="module")
def one_run(classifier_dir):
    """A classifier that computes one run at a time, so that holding that run holds the batcher."""
    from onnxpress.runtime import Classifier

    return Classifier.load(classifier_dir, variant="fp32", workers=1)


def held_batcher(clf, first_text=TEXTS[0], **config):
    """A batcher whose worker is held inside its first request (`first_text`) until `gate.release` is set
    (`clf` must run one batch at a time: `workers=1`)."""
    assert clf.runs.workers == 1
    gate = Gate()
    batcher = Batcher(clf, BatcherConfig(max_queue_delay_ms=0, **config), observer=gate)
    first = batcher.submit([first_text])
    assert gate.entered.wait(10)
    return gate, batcher, first


def test_concurrent_callers_are_merged_and_get_their_own_results(offline):
    clf, _ = offline
    texts = [TEXTS[i % len(TEXTS)] + " new" * (i % 5) for i in range(96)]
    expected = clf.predict_proba(texts)
    stats = BatchStats()
    with Batcher(clf, BatcherConfig(max_queue_delay_ms=20), observer=stats) as batcher:
        with ThreadPoolExecutor(32) as pool:
            got = list(pool.map(lambda t: batcher.submit([t]).result(10), texts))
        pair = batcher.submit(texts[:2]).result(10)
    np.testing.assert_allclose(np.concatenate(got), expected, atol=1e-5)
    np.testing.assert_allclose(pair, expected[:2], atol=1e-5)
    assert stats.requests == 97 and stats.rows == 98
    assert stats.mean_batch_rows > 1  # requests were merged into shared model runs
    assert stats.tokens > 0


def test_empty_and_invalid_input(offline):
    clf, _ = offline
    with Batcher(clf) as batcher:
        assert batcher.submit([]).result(1).shape == (0, len(clf.labels))
        with pytest.raises(TypeError):
            batcher.submit("a single string")
        with pytest.raises(TypeError):
            batcher.submit([1, 2])
        with pytest.raises(TypeError):
            batcher.submit(["x"], beam_size=2)


def test_full_queue_refuses_at_once_and_accepted_requests_complete(one_run):
    clf = one_run
    gate, batcher, first = held_batcher(clf, max_queue_size=2)  # the queue is empty again
    queued = [batcher.submit([TEXTS[1]]), batcher.submit([TEXTS[2]])]
    start = time.monotonic()
    with pytest.raises(Overloaded):
        batcher.submit([TEXTS[3]])
    assert time.monotonic() - start < 0.1
    gate.release.set()
    results = [f.result(10) for f in [first, *queued]]
    np.testing.assert_allclose(np.concatenate(results), clf.predict_proba(TEXTS[:3]), atol=1e-5)
    batcher.close()


def test_deadline_fails_queued_requests_without_computing_them(one_run):
    clf = one_run
    gate, batcher, first = held_batcher(clf)
    late = batcher.submit([TEXTS[1]], timeout_s=0.05)
    on_time = batcher.submit([TEXTS[2]], timeout_s=30)
    time.sleep(0.1)
    gate.release.set()
    with pytest.raises(DeadlineExceeded):
        late.result(10)
    np.testing.assert_allclose(on_time.result(10), clf.predict_proba(TEXTS[2:3]), atol=1e-5)
    first.result(10)
    batcher.close()
    assert gate.stats.rows == 2  # the late request never ran


def test_close_drains_accepted_requests_then_refuses(offline):
    clf, _ = offline
    batcher = Batcher(clf, BatcherConfig(max_queue_delay_ms=50))
    futures = [batcher.submit([t]) for t in TEXTS]
    batcher.close(drain=True)
    assert all(f.done() for f in futures)
    np.testing.assert_allclose(np.concatenate([f.result() for f in futures]), clf.predict_proba(TEXTS), atol=1e-5)
    with pytest.raises(Closed):
        batcher.submit(["x"])


def test_close_without_drain_fails_queued_requests(one_run):
    clf = one_run
    gate, batcher, first = held_batcher(clf)
    queued = batcher.submit([TEXTS[1]])
    threading.Timer(0.1, gate.release.set).start()
    batcher.close(drain=False)
    first.result(10)
    with pytest.raises(Closed):
        queued.result(10)


def test_rows_of_one_request_can_span_runs_shared_with_others_and_return_in_order(classifier_dir, offline):
    from onnxpress.runtime import Classifier

    clf, _ = offline
    small = Classifier.load(classifier_dir, variant="fp32", max_batch_tokens=40, workers=1)  # a few rows per run
    texts = [TEXTS[i % len(TEXTS)] + " new" * (i % 7) for i in range(40)]
    expected = clf.predict_proba(texts)
    gate, batcher, first = held_batcher(small)
    big = batcher.submit(texts[:16])
    singles = [batcher.submit([t]) for t in texts[16:]]
    gate.release.set()
    np.testing.assert_allclose(big.result(10), expected[:16], atol=1e-5)
    np.testing.assert_allclose(np.concatenate([f.result(10) for f in singles]), expected[16:], atol=1e-5)
    first.result(10)
    batcher.close()
    assert gate.stats.requests == 26 and gate.stats.rows == 41
    assert len(gate.runs) > 2 and all(rows == 1 or tokens <= 40 for rows, tokens in gate.runs)
    assert max(rows for rows, _ in gate.runs) > 1  # rows of different requests shared runs


def test_the_oldest_waiting_row_goes_into_the_next_run(one_run):
    clf = one_run
    long_text = " ".join(TEXTS)
    gate, batcher, first = held_batcher(clf)
    oldest = batcher.submit([long_text])
    later = [batcher.submit([t]) for t in TEXTS * 4]
    gate.release.set()
    oldest.result(10)
    for f in later:
        f.result(10)
    batcher.close()
    rows, tokens = gate.runs[1]  # the run after the held one
    assert tokens // rows == len(clf.encode([long_text]).ids)


def test_a_classifier_with_parallel_batches_computes_that_many_runs_at_once(classifier_dir, offline):
    from onnxpress.runtime import Classifier

    clf, _ = offline
    small = Classifier.load(classifier_dir, variant="fp32", max_batch_tokens=40, workers=2)
    texts = [TEXTS[i % len(TEXTS)] + " new" * (i % 7) for i in range(40)]
    expected = clf.predict_proba(texts)

    class Overlap(BatchStats):
        """Counts runs in flight; the first run waits (up to 5 s) for a second one to start."""

        def __init__(self):
            super().__init__()
            self.active = self.peak = 0
            self.cv = threading.Condition()

        def executed(self, rows, tokens):
            with self.cv:
                self.active += 1
                self.peak = max(self.peak, self.active)
                self.cv.notify_all()
                self.cv.wait_for(lambda: self.peak >= 2, timeout=5)
            super().executed(rows, tokens)

        def computed(self, seconds, requests, rows):
            with self.cv:
                self.active -= 1
            super().computed(seconds, requests, rows)

    stats = Overlap()
    with Batcher(small, BatcherConfig(max_queue_delay_ms=5), observer=stats) as batcher:
        futures = [batcher.submit([t]) for t in texts]
        got = np.concatenate([f.result(10) for f in futures])
    assert stats.peak == 2  # two runs were computing at the same time, never more
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert stats.requests == 40 and stats.rows == 40


def _holding_batcher(classifier_dir):
    """A 2-worker batcher whose runs each hold one row and wait in `executed` until released."""
    from onnxpress.runtime import Classifier

    one_row_runs = Classifier.load(classifier_dir, variant="fp32", max_batch_tokens=4, workers=2)
    held, release = threading.Semaphore(0), threading.Event()

    class Hold(BatchStats):
        def executed(self, rows, tokens):
            held.release()
            assert release.wait(10)
            super().executed(rows, tokens)

    batcher = Batcher(one_row_runs, BatcherConfig(max_queue_delay_ms=0), observer=Hold())
    return batcher, held, release


LONG = [TEXTS[i % len(TEXTS)] + " word" * i for i in range(6)]  # each longer than 4 tokens: one row per run


def test_with_parallel_runs_each_worker_picks_its_next_run_when_free(classifier_dir, offline):
    """Both workers computing: requests that arrive stay queued (none is tokenized or picked ahead),
    so the next run is chosen from the freshest queue by the worker that frees first."""
    clf, _ = offline
    batcher, held, release = _holding_batcher(classifier_dir)
    try:
        futures = [batcher.submit([LONG[0]]), batcher.submit([LONG[1]])]
        assert held.acquire(timeout=10) and held.acquire(timeout=10)  # both workers inside a run
        futures += [batcher.submit([t]) for t in LONG[2:]]
        time.sleep(0.2)  # a run wrongly picked ahead would have left the queue by now
        assert batcher.queue_depth == 4 and len(batcher._queue) == 4
    finally:
        release.set()
    got = np.concatenate([f.result(10) for f in futures])
    batcher.close()
    np.testing.assert_allclose(got, clf.predict_proba(LONG), atol=1e-5)


def test_rows_one_worker_leaves_in_the_pool_start_on_an_idle_worker_at_once(classifier_dir, offline):
    """One request of two rows: the worker that takes it runs one and wakes the idle one for the other."""
    clf, _ = offline
    batcher, held, release = _holding_batcher(classifier_dir)
    try:
        future = batcher.submit(LONG[:2])
        assert held.acquire(timeout=10)
        assert held.acquire(timeout=5)  # the second row runs while the first is held
    finally:
        release.set()
    np.testing.assert_allclose(future.result(10), clf.predict_proba(LONG[:2]), atol=1e-5)
    batcher.close()
    assert batcher.idle


@pytest.mark.parametrize("where", ["encode", "infer"])
def test_a_failure_fails_its_requests_and_the_workers_live_on(classifier_dir, offline, monkeypatch, where):
    from onnxpress.runtime import Classifier

    clf, _ = offline
    two = Classifier.load(classifier_dir, variant="fp32", workers=2)
    monkeypatch.setattr(two, where, _fails_once(getattr(two, where), f"{where} failed"))
    with Batcher(two, BatcherConfig()) as batcher:
        with pytest.raises(RuntimeError, match=f"{where} failed"):
            batcher.submit([TEXTS[0]]).result(10)
        later = [batcher.submit([t]) for t in TEXTS]
        got = np.concatenate([f.result(10) for f in later])
    np.testing.assert_allclose(got, clf.predict_proba(TEXTS), atol=1e-5)
    assert batcher.idle


@pytest.mark.parametrize("event", ["queued", "executed", "computed"])
@pytest.mark.parametrize("task", ["classifier", "translator"])
def test_an_observer_that_raises_is_logged_and_changes_no_answer(offline, caplog, event, task):
    clf, tr = offline
    model, texts = (clf, TEXTS[:3]) if task == "classifier" else (tr, GERMAN[:2])
    stats = BatchStats()
    setattr(stats, event, _fails_once(getattr(stats, event), "observer bug"))
    with caplog.at_level("ERROR", logger="onnxpress.runtime"), Batcher(model, observer=stats) as batcher:
        first = batcher.submit(texts).result(10)
        second = batcher.submit(texts).result(10)
    if task == "classifier":
        np.testing.assert_allclose(first, clf.predict_proba(texts), atol=1e-5)
        np.testing.assert_allclose(second, first, atol=1e-6)
    else:
        assert [t.text for t in first] == [t.text for t in second] == [t.text for t in tr.translate(texts)]
    assert any(f"observer failed in {event}" in r.getMessage() for r in caplog.records)
    assert batcher.idle and batcher.queue_depth == 0


def _fails_once(original, message):
    failures = iter([RuntimeError(message)])

    def wrapped(*args, **kwargs):
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return original(*args, **kwargs)
    return wrapped


def test_translator_requests_merge_only_with_the_same_beam(offline):
    _, tr = offline
    stats = BatchStats()
    with Batcher(tr, BatcherConfig(max_queue_delay_ms=50), observer=stats) as batcher:
        greedy = [batcher.submit([s], beam_size=1) for s in GERMAN]
        beam = [batcher.submit([s], beam_size=3, return_attention=True) for s in GERMAN]
        got_greedy = [f.result(10)[0] for f in greedy]
        got_beam = [f.result(10)[0] for f in beam]
        with pytest.raises(ValueError):
            batcher.submit(["x"], beam_size=0)
    assert [t.text for t in got_greedy] == [t.text for t in tr.translate(GERMAN, beam_size=1)]
    want = tr.translate(GERMAN, beam_size=3, return_attention=True)
    assert [t.text for t in got_beam] == [t.text for t in want]
    np.testing.assert_allclose(got_beam[0].attention, want[0].attention, atol=1e-5)
    assert stats.requests == 8 and stats.runs == 2  # one merged run per beam size


def test_a_translator_reports_the_batches_it_decodes():
    """Batches split by the token budget are counted one by one; a blank text runs nothing."""
    from onnxpress.runtime import Translator

    small = Translator.load(TRANSLATOR, variant="fp32", max_batch_tokens=16)
    plan = list(small.budget.plan(small.source.encode(GERMAN, with_type_ids=False).lengths))
    assert len(plan) > 1
    stats = BatchStats()
    with Batcher(small, observer=stats) as batcher:
        batcher.submit([*GERMAN, "  "]).result(10)
    assert (stats.runs, stats.tokens) == (len(plan), sum(b.tokens for b in plan))


def test_a_bug_in_picking_a_run_fails_those_requests_and_the_batcher_goes_on(offline, monkeypatch, caplog):
    from onnxpress.runtime.row_pool import RowPool

    clf, _ = offline
    monkeypatch.setattr(RowPool, "next_run", _fails_once(RowPool.next_run, "pick bug"))
    with caplog.at_level("ERROR", logger="onnxpress.runtime"), Batcher(clf) as batcher:
        with pytest.raises(RuntimeError, match="pick bug"):
            batcher.submit(TEXTS[:2]).result(10)
        np.testing.assert_allclose(batcher.submit(TEXTS).result(10), clf.predict_proba(TEXTS), atol=1e-5)
    assert batcher.idle and batcher.queue_depth == 0
    assert any("batcher worker step failed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("answer", ["extra column", "missing row"])
def test_a_model_answering_the_wrong_shape_fails_the_request_instead_of_hanging(offline, monkeypatch, answer):
    clf, tr = offline
    real = clf.infer

    def wrong(encoded):
        probs = real(encoded)
        return np.concatenate([probs, probs[:, :1]], axis=1) if answer == "extra column" else probs[:-1]

    monkeypatch.setattr(clf, "infer", wrong)
    with Batcher(clf) as batcher:
        with pytest.raises(RuntimeError, match="the model answered"):
            batcher.submit(TEXTS[:3]).result(10)
    monkeypatch.setattr(tr, "translate", lambda texts, **kw: [])
    with Batcher(tr) as batcher:
        with pytest.raises(RuntimeError, match="the model answered 0 results"):
            batcher.submit(GERMAN[:2]).result(10)


def test_a_translation_everyone_gave_up_on_stops_between_batches():
    """A request past its deadline while its translation runs: the worker stops before the next batch
    instead of decoding the rest for nobody, and the next request is served as usual."""
    from onnxpress.runtime.translator import Translator

    tr = Translator.load(TRANSLATOR, variant="fp32", max_batch_size=2, workers=1)  # many small batches
    decoded = []
    real = tr.search_batch

    def slow_batch(*args, **kwargs):
        decoded.append(1)
        time.sleep(0.05)
        return real(*args, **kwargs)

    tr.search_batch = slow_batch
    sentences = [g + f" {i}" for i in range(10) for g in GERMAN]  # 40 sentences: 20 batches
    stats = BatchStats()
    with Batcher(tr, observer=stats) as batcher:
        late = batcher.submit(sentences, timeout_s=0.12)
        with pytest.raises(DeadlineExceeded, match="stopped between batches"):
            late.result(10)
        stopped_after = len(decoded)
        assert 1 <= stopped_after < 6  # 20 batches would take 1 s or more
        assert stats.runs == stopped_after  # the metrics count the batches decoded, not those planned
        assert [t.text for t in batcher.submit(GERMAN, timeout_s=30).result(30)] == \
            [t.text for t in Translator.load(TRANSLATOR, variant="fp32").translate(GERMAN)]
    assert batcher.idle
