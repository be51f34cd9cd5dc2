"""The classifier batcher's pool: tokenized rows of accepted requests, and the choice of the next run.

A served classifier would waste a third of its time if it ran each merged group of requests on
its own: a group of 16 single texts packs into runs of ~6 rows with ~17% padding, where offline
`predict` (thousands of texts sorted together) runs ~10 rows with almost none. So the worker keeps
the rows of every accepted request in one pool and picks one run at a time: the run always
holds a row of the oldest request (no request starves) and, around it in length order, the rows
that waste the least: the fewest computed tokens per real token, a run's fixed cost counted in
tokens. A padded token costs as much as a real one, while a run of 4 rows costs per row about what
one of 16 does, so a smaller run beats padding short rows to a long one's length. New requests
join the pool between runs, so each run is chosen from everything waiting. A request is answered
when its last row is done.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from onnxpress.runtime.text_tokenizer import Encoded
from onnxpress.runtime.token_budget import Batch, TokenBudget

# A run's fixed cost (ONNX Runtime's per-run work, the batcher's Python) in tokens of model work: a
# smaller run beats padding short rows to a long one's length (figures: docs/serving.md, "Performance").
RUN_OVERHEAD_TOKENS = 16
EXACT_SIZES = 64  # run sizes scored one by one; larger ones on a ladder (see window_sizes)


def pick_run(lengths: Sequence[int] | np.ndarray, must: Sequence[int] | np.ndarray | int,
             budget: TokenBudget, run_overhead_tokens: int = RUN_OVERHEAD_TOKENS) -> Batch:
    """One run under `budget` that includes at least one of the rows `must`: of the windows of
    rows adjacent in length order that do, the one that computes the fewest tokens per real token,
    a run counting `run_overhead_tokens` more for its fixed cost."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")  # longest first, as TokenBudget.plan
    sorted_lengths = lengths[order]
    n = len(order)
    real = np.concatenate([[0], np.cumsum(sorted_lengths)])
    wanted = np.zeros(n, dtype=bool)
    wanted[np.asarray(must, dtype=np.int64)] = True
    wanted_before = np.concatenate([[0], np.cumsum(wanted[order])])  # wanted rows among the first i
    padded = budget.padded_each(sorted_lengths)
    most_rows = budget.most_rows(padded)
    if not wanted_before[-1]:
        raise ValueError("pick_run needs at least one row in `must`")
    # windows [start, start + size): row `start` (the longest) sets the padded length
    sizes = window_sizes(int(most_rows.max()))[None, :]
    starts = np.arange(n)[:, None]
    ends = starts + sizes
    fits = (ends <= n) & (sizes <= most_rows[:, None])
    ends = np.minimum(ends, n)
    fits &= wanted_before[ends] > wanted_before[:-1, None]
    computed = sizes * padded[:, None] + run_overhead_tokens
    score = np.where(fits, (real[ends] - real[:-1, None]) / computed, -1.0)
    start, size = np.unravel_index(int(np.argmax(score)), score.shape)
    start, end = int(start), int(ends[start, size])
    return Batch(indices=order[start:end], length=int(padded[start]))


def window_sizes(most: int) -> np.ndarray:
    """The run sizes `pick_run` scores: every size up to EXACT_SIZES rows, then a geometric ladder
    (GPU budgets allow hundreds of rows, and scoring every size of every window took milliseconds)."""
    if most <= EXACT_SIZES:
        return np.arange(1, most + 1)
    ladder = np.geomspace(EXACT_SIZES + 1, most, EXACT_SIZES // 2).round().astype(np.int64)
    return np.unique(np.concatenate([np.arange(1, EXACT_SIZES + 1), ladder]))


@dataclass(eq=False)  # compared by identity
class Pending:
    """An accepted request whose rows are in the pool: its probabilities fill in run by run."""

    request: Any  # the batcher's request (its future, enqueue time, deadline)
    probs: np.ndarray  # [n, labels], filled as its rows are computed
    left: int  # rows not computed yet
    started: bool = False  # one of its rows ran (or is running)
    failed: bool = False  # a run with one of its rows failed: the future holds the error


class RowPool:
    """Waiting rows in arrival order: `encoded` holds them, `owners[i]` and `slots[i]` say whose
    row i is and where its result goes."""

    def __init__(self, budget: TokenBudget, n_labels: int):
        self.budget = budget
        self.n_labels = n_labels
        self.encoded = Encoded.concat([])
        self.owners: list[Pending] = []
        self.slots: list[int] = []

    def __len__(self) -> int:
        """Rows waiting."""
        return len(self.owners)

    def add(self, requests: Sequence[Any], encoded: Encoded) -> list[Pending]:
        """Rows of `requests` (each with `.texts`), tokenized together in `encoded`, in order."""
        added = []
        for request in requests:
            n = len(request.texts)
            pending = Pending(request, np.empty((n, self.n_labels), np.float32), n)
            self.owners.extend([pending] * n)
            self.slots.extend(range(n))
            added.append(pending)
        self.encoded = Encoded.concat([self.encoded, encoded]) if len(self.encoded) else encoded
        return added

    @property
    def waiting(self) -> int:
        """Requests in the pool none of whose rows has run yet."""
        return len({id(owner) for owner in self.owners if not owner.started})

    def drop(self, doomed: Callable[[Pending], bool]) -> None:
        """Remove the rows of every request for which `doomed` (asked once per request) is true."""
        verdicts: dict[int, bool] = {}
        for owner in self.owners:
            if id(owner) not in verdicts:
                verdicts[id(owner)] = doomed(owner)
        keep = [i for i, owner in enumerate(self.owners) if not verdicts[id(owner)]]
        if len(keep) != len(self.owners):
            self._keep(keep)

    def next_run(self) -> tuple[Encoded, Batch, list[tuple[Pending, int]]]:
        """The next run, whose rows leave the pool: their `Encoded`, the batch over it (the best
        window holding a row of the oldest request) and, per row, its owner and its place there."""
        if len(self.owners) == 1:  # a lone row (a lone single-text request): nothing to choose
            encoded, targets = self.encoded, [(self.owners[0], self.slots[0])]
            self.encoded, self.owners, self.slots = Encoded.concat([]), [], []
            return encoded, Batch(np.arange(1), int(self.budget.padded_each(encoded.lengths)[0])), targets
        oldest = self.owners[0]
        batch = pick_run(self.encoded.lengths, [i for i, owner in enumerate(self.owners) if owner is oldest],
                         self.budget)
        rows = np.sort(batch.indices)
        chosen = set(rows.tolist())
        targets = [(self.owners[i], self.slots[i]) for i in rows]
        encoded = self.encoded.take(rows)
        self._keep([i for i in range(len(self.owners)) if i not in chosen])
        return encoded, Batch(np.arange(len(rows)), batch.length), targets

    def _keep(self, rows: list[int]) -> None:
        self.encoded = self.encoded.take(np.asarray(rows, dtype=np.int64))
        self.owners = [self.owners[i] for i in rows]
        self.slots = [self.slots[i] for i in rows]
