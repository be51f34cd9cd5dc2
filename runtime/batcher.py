"""Dynamic batching across callers: one queue per model and its worker threads (no web code here).

    from onnxpress.runtime import Classifier
    from onnxpress.runtime.batcher import Batcher

    with Batcher(Classifier.load("artifacts/clf")) as batcher:
        probs = batcher.submit(["Stocks rally ..."]).result()   # np.ndarray [1, n_labels]

Requests from any number of threads wait in a bounded FIFO queue. An idle worker starts on the
oldest request at once, or waits up to `max_queue_delay_ms` (default 0) for company; requests that
arrive while a run computes are batched anyway. A classifier has one worker per parallel run
(`Classifier.runs`, one for most): a free worker moves the queued requests into a shared pool of
tokenized rows, picks a run from it (the oldest waiting row with the neighbours in length that waste
the least, `onnxpress.runtime.row_pool`) and computes it itself, so a run is chosen from the freshest
pool and no thread hands work to another. A translator's worker
takes every queued request with the same key (beam size and attention flag) up to `max_batch_size`
sentences and translates them together. Each caller's future gets exactly its own results, in
order. A full queue refuses at once (`Overloaded`); a request still waiting at its deadline fails
with `DeadlineExceeded` without being computed, and a translation whose requests are all past their
deadlines stops before its next batch (a long one would otherwise hold the worker for nobody);
`close(drain=True)` computes everything already accepted.

The queue and the batch budget are measured here, where they live; `BatchObserver` receives the
figures (`BatchStats` keeps totals; the server exports them to Prometheus).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, Union

import numpy as np

from onnxpress.errors import UserError
from onnxpress.runtime.beam_search import check_beam_size
from onnxpress.runtime.row_pool import Pending, RowPool
from onnxpress.runtime.text_tokenizer import check_texts

if TYPE_CHECKING:
    from onnxpress.runtime.classifier import Classifier
    from onnxpress.runtime.translator import Translator

POOL_BATCHES = 2  # a classifier's pool takes requests up to this many max_batch_size of rows
log = logging.getLogger("onnxpress.runtime")


class BatcherError(Exception):
    """A request the batcher did not compute."""


class Overloaded(BatcherError):
    """The queue is full: retry later."""


class DeadlineExceeded(BatcherError):
    """The request was still queued when its deadline passed."""


class Closed(BatcherError):
    """The batcher is closed (shutting down) and accepts no new requests."""


@dataclass(frozen=True)
class BatcherConfig:
    """Queueing policy. Batch sizes come from the model's own `budget` (the offline token budget)."""

    max_queue_delay_ms: float = 0.0  # how long the oldest request of an idle worker waits for others
    max_queue_size: int = 256  # queued requests (not texts) before `Overloaded`
    timeout_s: float | None = None  # default per-request deadline, from submission

    def __post_init__(self) -> None:
        if self.max_queue_delay_ms < 0 or self.max_queue_size < 1:
            raise ValueError("max_queue_delay_ms must be >= 0 and max_queue_size >= 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")


class BatchObserver(Protocol):
    """Receives the batcher's measurements (called from its worker threads)."""

    def queued(self, seconds: float) -> None:
        """One request left the queue after `seconds`."""

    def executed(self, rows: int, tokens: int | None) -> None:
        """One model run of `rows` rows and `tokens` padded tokens (None where not known)."""

    def computed(self, seconds: float, requests: int, rows: int) -> None:
        """One step took `seconds` to compute `rows` texts and completed `requests` requests (a
        translator's step is a merged group; a classifier's, one run and the tokenizing before it)."""


@dataclass
class BatchStats:
    """Running totals: the default observer, enough for an embedding app's own logging."""

    requests: int = 0
    rows: int = 0
    runs: int = 0
    tokens: int = 0
    queue_seconds: float = 0.0
    compute_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def queued(self, seconds: float) -> None:
        with self._lock:
            self.queue_seconds += seconds

    def executed(self, rows: int, tokens: int | None) -> None:
        with self._lock:
            self.runs += 1
            self.tokens += tokens or 0

    def computed(self, seconds: float, requests: int, rows: int) -> None:
        with self._lock:
            self.requests += requests
            self.rows += rows
            self.compute_seconds += seconds

    @property
    def mean_batch_rows(self) -> float:
        return self.rows / self.runs if self.runs else 0.0


@dataclass
class _Request:
    texts: list[str]
    key: tuple
    future: Future
    enqueued: float
    deadline: float | None


class _ClassifierWork:
    """Rows through `encode` + `infer`, runs picked one at a time from a `RowPool` shared by the
    workers, one per parallel run of the classifier (`Classifier.runs`). The pool is guarded by
    the batcher's lock, like the queue, so the queue depth counts each request once."""

    def __init__(self, classifier: Any):
        self.model = classifier
        self.budget = classifier.budget
        self.pool = RowPool(classifier.budget, len(classifier.labels))
        self.workers = getattr(getattr(classifier, "runs", None), "workers", 1)

    def key(self, options: dict[str, Any]) -> tuple:
        if options:
            raise TypeError(f"a classifier takes no options (got {sorted(options)})")
        return ()

    def empty(self, key: tuple) -> Any:
        return np.zeros((0, len(self.model.labels)), np.float32)


class _TranslatorWork:
    """Merged sentences through `translate`; requests with different options are never merged."""

    def __init__(self, translator: Any):
        self.model = translator
        self.budget = translator.budget

    def key(self, options: dict[str, Any]) -> tuple:
        unknown = set(options) - {"beam_size", "return_attention"}
        if unknown:
            raise TypeError(f"unknown translate option(s) {sorted(unknown)}")
        beam = options.get("beam_size")
        if beam is not None:
            try:
                beam = check_beam_size(beam)
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return (beam, bool(options.get("return_attention", False)))

    def empty(self, key: tuple) -> Any:
        return []

    def run(self, texts: list[str], key: tuple, on_batch: Callable[[int, int], None]) -> Sequence[Any]:
        beam, attention = key
        return self.model.translate(texts, beam_size=beam, return_attention=attention, on_batch=on_batch)


def _work_for(model: Any) -> _ClassifierWork | _TranslatorWork:
    if hasattr(model, "translate"):
        return _TranslatorWork(model)
    if hasattr(model, "infer") and hasattr(model, "encode"):
        return _ClassifierWork(model)
    raise TypeError(f"cannot batch {type(model).__name__}: expected a Classifier or a Translator")


class Batcher:
    """Cross-thread dynamic batching for one `Classifier` or `Translator`.

    `submit(texts)` returns a `concurrent.futures.Future`: probabilities [n, n_labels] for a
    classifier, `list[Translation]` for a translator (options: `beam_size`, `return_attention`).
    """

    def __init__(self, model: Union["Classifier", "Translator"], config: BatcherConfig | None = None,
                 observer: BatchObserver | None = None, name: str = "model"):
        self.model = model
        self.config = config or BatcherConfig()
        self.observer: BatchObserver = observer or BatchStats()
        self.name = name
        self._work = _work_for(model)
        # One lock guards the queue, a classifier's pool and the counters below; futures are
        # settled after it is released (`_settle`), so a caller's done-callback never runs under it.
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._failing: list[tuple[_Request, BaseException]] = []  # to settle once the lock is released
        self._closed = False
        self._discard = False  # close(drain=False): fail what has not started
        self._active = 0  # workers holding requests taken from the queue
        self._tokenizing = 0  # requests taken from the queue, not yet in the pool
        self._pooled = 0  # requests in a classifier's pool none of whose rows has started
        if isinstance(self._work, _ClassifierWork):
            step, workers = self._pool_step, self._work.workers
        else:
            step, workers = self._group_step, 1
        self._threads = [threading.Thread(target=self._loop, args=(step,), daemon=True,
                                          name=f"batcher-{name}" + (f"-{i}" if workers > 1 else ""))
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # -- callers -----------------------------------------------------------------
    def submit(self, texts: Sequence[str], *, timeout_s: float | None = None, **options: Any) -> "Future[Any]":
        """Queue `texts`; the future holds their results in order or a `BatcherError`.

        Raises `Overloaded` or `Closed` at once (nothing queued), `TypeError`/`ValueError` for bad
        input. `timeout_s` overrides the configured deadline.
        """
        texts = check_texts(texts)
        key = self._work.key(options)
        future: Future[Any] = Future()
        now = time.monotonic()
        timeout = timeout_s if timeout_s is not None else self.config.timeout_s
        request = _Request(texts, key, future, now, now + timeout if timeout is not None else None)
        with self._cond:
            if self._closed:
                raise Closed(f"{self.name} is shutting down")
            if texts:
                waiting = self.queue_depth
                if waiting >= self.config.max_queue_size:
                    raise Overloaded(f"{self.name}: {waiting} requests queued (limit "
                                     f"{self.config.max_queue_size}); retry later")
                self._queue.append(request)
                self._cond.notify()
        if not texts:
            future.set_running_or_notify_cancel()
            future.set_result(self._work.empty(key))
        return future

    @property
    def queue_depth(self) -> int:
        """Requests waiting (not counting those being computed)."""
        return len(self._queue) + self._tokenizing + self._pooled

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being computed."""
        with self._cond:
            return not self._queue and not self._active and not self._rows_pooled()

    def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Refuse new requests; compute the queued ones (drain) or fail them with `Closed`."""
        with self._cond:
            self._closed = True
            if not drain:
                self._discard = True
                while self._queue:
                    self._fail(self._queue.popleft(), Closed(f"{self.name} closed before computing this request"))
            self._cond.notify_all()
        self._settle()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> "Batcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=True)

    # -- worker ------------------------------------------------------------------
    def _loop(self, step: Callable[[], bool]) -> None:
        while True:
            try:
                if not step():
                    return
            except Exception as exc:  # noqa: BLE001 - a bug in the batcher itself: fail the pool's requests, live on
                log.exception("%s: batcher worker step failed", self.name)
                try:
                    self._fail_pool(exc)
                except Exception:  # noqa: BLE001 - the worker must outlive even this
                    log.exception("%s: could not fail the pool's requests", self.name)

    def _observe(self, event: str, *args: Any) -> None:
        """Call the observer; an observer that raises is logged, never allowed to stop a worker."""
        try:
            getattr(self.observer, event)(*args)
        except Exception:  # noqa: BLE001 - metrics must not break inference
            log.exception("%s: batch observer failed in %s", self.name, event)

    def _group_step(self) -> bool:
        """A translator's step: one merged group of requests with the same key."""
        group = self._next_group()
        if group is None:
            return False
        try:
            self._compute(group)
        finally:
            with self._cond:
                self._active -= 1
        return True

    def _pool_step(self) -> bool:
        """A classifier worker's step: take the queued requests into the pool, pick one run from
        it and compute it."""
        work = self._work
        assert isinstance(work, _ClassifierWork)
        with self._cond:
            if not self._rows_pooled() and not self._wait_for_company():
                return False
            room = POOL_BATCHES * work.budget.max_batch_size - len(work.pool)
            taken = self._take((), room) if room > 0 else []
            self._tokenizing += len(taken)
            self._active += 1
        self._settle()
        start = time.monotonic()
        try:
            encoded = None
            if taken:
                try:
                    encoded = work.model.encode([t for request in taken for t in request.texts])
                except BaseException as exc:  # noqa: BLE001 - the callers get the failure, the worker lives on
                    for request in taken:
                        request.future.set_exception(exc)
            picked = None
            with self._cond:
                self._tokenizing -= len(taken)
                pool = work.pool  # read under the lock: `_fail_pool` may have replaced it meanwhile
                try:
                    if encoded is not None:
                        pool.add(taken, encoded)
                    pool.drop(lambda owner: owner.failed or self._expired(owner))
                    if len(pool):
                        picked = pool.next_run()
                        owners = list({id(owner): owner for owner, _ in picked[2]}.values())
                        starting = [owner for owner in owners if not owner.started]
                        for owner in starting:
                            owner.started = True
                    if len(pool):
                        self._cond.notify()  # rows left over: an idle worker can pick the next run at once
                    self._pooled = pool.waiting
                except Exception as exc:  # a bug in picking: this step's requests fail, `_loop` empties the pool
                    self._failing.extend((r, exc) for r in taken if not r.future.done())
                    raise
            self._settle()
            if picked is not None:
                self._run_one(*picked, owners, starting, start)
        finally:
            with self._cond:
                self._active -= 1
        return True

    def _run_one(self, encoded: Any, batch: Any, targets: list[tuple[Pending, int]], owners: list[Pending],
                 starting: list[Pending], start: float) -> None:
        """Compute one run picked from the pool (`starting`: its owners none of whose rows ran
        before) and answer the requests it completes."""
        work = self._work
        assert isinstance(work, _ClassifierWork)
        for owner in starting:
            self._observe("queued", start - owner.request.enqueued)
        self._observe("executed", batch.size, batch.tokens)
        try:
            probs = work.model.infer(encoded)
            if np.shape(probs) != (len(targets), len(work.model.labels)):
                raise RuntimeError(f"{self.name}: the model answered {np.shape(probs)} for "
                                   f"{len(targets)} rows of {len(work.model.labels)} labels")
            with self._cond:
                for (owner, slot), row in zip(targets, probs):
                    owner.probs[slot] = row
                    owner.left -= 1
                done = [owner for owner in owners if owner.left == 0 and not owner.failed]
        except BaseException as exc:  # noqa: BLE001 - the callers get the failure, the worker lives on
            with self._cond:  # their rows still in the pool are dropped by the next step
                failing = [owner for owner in owners if not owner.failed]
                for owner in failing:
                    owner.failed = True
            for owner in failing:
                owner.request.future.set_exception(exc)
            return
        self._observe("computed", time.monotonic() - start, len(done), batch.size)
        for owner in done:
            owner.request.future.set_result(owner.probs)

    def _fail_pool(self, exc: BaseException) -> None:
        """After an unexpected error: fail every request a classifier's pool holds and start a new pool."""
        work = self._work
        if isinstance(work, _ClassifierWork):
            with self._cond:
                for owner in {id(owner): owner for owner in work.pool.owners if not owner.failed}.values():
                    owner.failed = True  # a run of its rows still computing elsewhere will not answer it
                    self._failing.append((owner.request, exc))
                work.pool = RowPool(work.budget, len(work.model.labels))
                self._pooled = 0
        self._settle()

    def _rows_pooled(self) -> int:
        """Rows waiting in a classifier's pool (0 for a translator)."""
        work = self._work
        return len(work.pool) if isinstance(work, _ClassifierWork) else 0

    def _expired(self, owner: Pending) -> bool:
        """(Holding the lock) whether a request that has not started must leave the pool: past its
        deadline, or discarded by `close(drain=False)`; its failure is settled later."""
        if owner.started:
            return False
        request = owner.request
        now = time.monotonic()
        if self._discard:
            self._fail(request, Closed(f"{self.name} closed before computing this request"))
            return True
        if request.deadline is not None and now >= request.deadline:
            self._fail(request, self._past_deadline(request, now))
            return True
        return False

    def _past_deadline(self, request: _Request, now: float, computing: bool = False) -> DeadlineExceeded:
        where = "stopped between batches" if computing else "still queued"
        return DeadlineExceeded(f"{self.name}: {where} {now - request.enqueued:.3f} s after submission, "
                                "past its deadline")

    def _fail(self, request: _Request, exc: BatcherError) -> None:
        """(Holding the lock) fail `request` once the lock is released."""
        self._failing.append((request, exc))

    def _settle(self) -> None:
        """Set the exceptions `_fail` recorded (called without the lock)."""
        if not self._failing:  # the usual case, twice per run: no lock taken. A failure recorded
            return  # meanwhile is settled by the thread that recorded it, which calls this next
        with self._cond:
            failing, self._failing = self._failing, []
        for request, exc in failing:
            future = request.future
            try:
                if not future.done() and (future.running() or future.set_running_or_notify_cancel()):
                    future.set_exception(exc)
            except InvalidStateError:
                pass  # another thread settled it first (a request can be recorded twice after a bug)

    def _wait_for_company(self) -> bool:
        """(Holding the lock) block for the oldest request, then give others `max_queue_delay_ms`
        after it to arrive or until a full batch is queued. Rows another worker left in a
        classifier's pool are work too. False once closed with nothing queued or pooled."""
        while not self._queue and not self._rows_pooled() and not self._closed:
            self._cond.wait()
        if not self._queue:
            return bool(self._rows_pooled())
        oldest = self._queue[0]
        limit = self._work.budget.max_batch_size
        until = oldest.enqueued + self.config.max_queue_delay_ms / 1e3
        while not self._closed and self._rows_like(oldest.key, limit) < limit:
            left = until - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        return True

    def _next_group(self) -> list[_Request] | None:
        """Block for the oldest request, give others `max_queue_delay_ms` to join, take a group."""
        limit = self._work.budget.max_batch_size
        try:
            with self._cond:
                while True:
                    if not self._wait_for_company():
                        return None
                    group = self._take(self._queue[0].key, limit)
                    if group:
                        self._active += 1
                        return group
        finally:
            self._settle()

    def _rows_like(self, key: tuple, limit: int) -> int:
        rows = 0
        for request in self._queue:
            if request.key == key:
                rows += len(request.texts)
                if rows >= limit:
                    break
        return rows

    def _take(self, key: tuple, limit: int) -> list[_Request]:
        """(Holding the lock) remove and return the FIFO run of requests with `key` up to `limit`
        rows (the first always).

        Expired and cancelled requests are dropped on the way; others stay queued in order.
        """
        now = time.monotonic()
        group: list[_Request] = []
        kept: deque[_Request] = deque()
        rows = 0
        while self._queue:
            request = self._queue.popleft()
            if request.key != key or (group and rows + len(request.texts) > limit):
                kept.append(request)
                continue
            if request.deadline is not None and now >= request.deadline:
                self._fail(request, self._past_deadline(request, now))
                continue
            if not request.future.set_running_or_notify_cancel():
                continue  # the caller gave up
            group.append(request)
            rows += len(request.texts)
        self._queue = kept
        return group

    def _compute(self, group: list[_Request]) -> None:
        start = time.monotonic()
        for request in group:
            self._observe("queued", start - request.enqueued)
        texts = [t for request in group for t in request.texts]
        deadlines = [request.deadline for request in group]

        def starting(rows: int, tokens: int) -> None:  # a batch starts: unless nobody waits for it, count it
            if None not in deadlines and time.monotonic() >= max(deadlines):  # type: ignore[type-var]
                raise self._past_deadline(group[0], time.monotonic(), computing=True)
            self._observe("executed", rows, tokens)

        try:
            results = self._work.run(texts, group[0].key, starting)
            if len(results) != len(texts):
                raise RuntimeError(f"{self.name}: the model answered {len(results)} results for {len(texts)} texts")
        except BaseException as exc:  # noqa: BLE001 - the callers get the failure, the worker lives on
            for request in group:
                request.future.set_exception(exc)
            return
        self._observe("computed", time.monotonic() - start, len(group), len(texts))
        offset = 0
        for request in group:
            n = len(request.texts)
            request.future.set_result(results[offset : offset + n])
            offset += n
