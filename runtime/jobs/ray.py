"""Batch jobs on Ray Data: the runtime's Classifier / Translator in a pool of Ray actors.

Two ways in:

* `classify_dataset(ds, artifact, ...)` / `translate_dataset(...)` for a Ray Dataset the
  caller already has (any source Ray reads: folders, object stores, ...): `map_batches` with a
  callable class that loads the model once per actor, `compute=ActorPoolStrategy(size=workers)`.
* `score_file_on_ray` / `translate_file_on_ray`, the CLI's `--engine ray`: the local file jobs
  of `runtime/jobs/score.py` and `translate.py` (same readers, chunks, part files, resume,
  merge and row-count check), with each uncommitted chunk computed by the actor pool.

Threads: each actor reserves `threads_per_worker` CPUs (`num_cpus`), so Ray places at most
(node CPUs / threads) actors per node, and the actor opens ONNX Runtime with exactly that many
intra-op threads (one inter-op thread, the runtime's default) and sets OMP_NUM_THREADS to it.
Inside an actor, each chunk is planned under the runtime's token budget by `Classifier.classify`.

The artifact reaches the actors by path when Ray runs on this machine only (one node, no Ray
Client), else packed into the object store and unpacked once per node into a temporary folder
named after its manifest's sha256; either way `Classifier.load` / `Translator.load` verify the
sha256 of every file on the worker.

Failures: a killed actor is restarted by Ray Data and its in-flight block retried, so every row
still comes out exactly once. A killed driver loses only chunks not yet committed: the same
command run again resumes from the committed part files (the protocol of `resumable.py`). Rows
that cannot be read or have no usable text are error rows, as in the local job.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import MANIFEST_NAME, Artifact
from onnxpress.runtime.jobs.readers import Chunk, _join
from onnxpress.runtime.jobs.resumable import part_name, run_job
from onnxpress.runtime.jobs.score import ScoreConfig, ScoreJob, ScoreSummary, _part_table
from onnxpress.runtime.jobs.translate import TranslateConfig, TranslateJob, TranslateSummary, _translate_lines
from onnxpress.runtime.jobs.writers import write_lines
from onnxpress.runtime.variants import candidates

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

INSTALL_HINT = 'the Ray engine needs Ray: pip install "onnxpress[ray]"'
CHUNK_COLUMN = "_chunk"  # internal: which file-job chunk a row belongs to


def require_ray() -> Any:
    """The `ray` module, or a one-line `UserError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ray


# -- sizing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workers:
    """The actor pool: `workers` actors, each reserving `threads` CPUs (and `gpus` GPUs)."""

    workers: int = 2
    threads: int = 1
    gpus: float = 0.0
    variant: str = "auto"
    max_batch_tokens: int | None = None
    max_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UserError(f"--workers must be >= 1 (got {self.workers})")
        if self.threads < 1:
            raise UserError(f"--threads-per-worker must be >= 1 (got {self.threads})")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"

    def map_args(self) -> dict[str, Any]:
        """`map_batches` keywords: one block per call, a fixed pool, resources per actor."""
        ray = require_ray()
        args: dict[str, Any] = {"batch_size": None, "batch_format": "pyarrow", "num_cpus": self.threads,
                                "compute": ray.data.ActorPoolStrategy(size=self.workers)}
        if self.gpus:
            args["num_gpus"] = self.gpus
        return args

    def load_options(self) -> dict[str, Any]:
        return {"device": self.device, "threads": self.threads}


class ModelInfo:
    """The model the actors will load, decided once on the driver (so all actors agree), without
    a session: the artifact, the variant and the labels (what a job's settings record)."""

    def __init__(self, artifact: str | os.PathLike, task: str, workers: Workers):
        self.artifact = Artifact.open(artifact)
        if self.artifact.task != task:
            raise UserError(f"{artifact} is a {self.artifact.task} artifact, not {task}")
        self.variant = resolve_variant(self.artifact, workers.variant, workers.device)
        self.labels = list(self.artifact.manifest.labels or [])


def resolve_variant(artifact: Artifact, variant: str, device: str) -> str:
    """The variant every actor will load: decided once on the driver, so all actors agree."""
    if variant != "auto":
        artifact.variant(variant)  # refuses unknown or rejected variants
        return variant
    names = candidates(artifact, device)
    if not names:
        raise UserError(f"artifact {artifact.root} has no servable variant for {device}")
    return names[0]


# -- the artifact on the workers --------------------------------------------------------------------
@dataclass(frozen=True)
class ArtifactSource:
    """Where actors find the artifact: the driver's path, or a packed copy in the object store."""

    path: str
    digest: str  # sha256 of manifest.json: names the unpacked copy on each node
    packed: tuple[Any, ...] = ()  # (ObjectRef of a tar,) or () for "read `path`"

    def unpacked_path(self) -> str:
        """Where `local_path` unpacks an object-store copy on a node."""
        return str(Path(tempfile.gettempdir()) / "onnxpress-artifacts" / self.digest)

    def local_path(self) -> str:
        """A path to the artifact on this node (unpacking the object-store copy once per node)."""
        if not self.packed:
            return self.path
        import ray

        target = Path(self.unpacked_path())
        if (target / MANIFEST_NAME).is_file():
            return str(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{self.digest[:12]}-"))
        with tarfile.open(fileobj=io.BytesIO(ray.get(self.packed[0])), mode="r") as tar:
            tar.extractall(staging, filter="data")
        try:
            os.rename(staging, target)  # another actor on this node may have won the race
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return str(target)


def ship_artifact(path: str | os.PathLike, transport: str = "auto") -> ArtifactSource:
    """The artifact for the actors: by `"path"`, through the `"object-store"`, or `"auto"`:
    by path when Ray runs on this machine only, else through the object store."""
    ray = require_ray()
    artifact = Artifact.open(path)
    root = artifact.root.resolve()
    digest = hashlib.sha256((root / MANIFEST_NAME).read_bytes()).hexdigest()
    if transport == "auto":
        transport = "path" if _ray_is_this_machine(ray) else "object-store"
    if transport == "path":
        return ArtifactSource(str(root), digest)
    if transport != "object-store":
        raise UserError(f"unknown artifact transport {transport!r} (auto, path or object-store)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in [MANIFEST_NAME, *artifact.manifest.files]:
            tar.add(root / name, arcname=name)
    return ArtifactSource(str(root), digest, (ray.put(buffer.getvalue()),))


def _ray_is_this_machine(ray: Any) -> bool:
    from ray.util.client import ray as client

    if client.is_connected():
        return False
    here = ray.get_runtime_context().get_node_id()
    return all(node["NodeID"] == here for node in ray.nodes() if node.get("Alive"))


# -- the actors -------------------------------------------------------------------------------------
def _limit_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)  # anything OpenMP-based in the actor stays in its share


def _groups(batch: "pa.Table") -> Iterator[tuple[Any, "pa.Table"]]:
    """The batch split by file-job chunk (each chunk planned alone, exactly as the local job
    does); a batch without chunk ids is one group."""
    import pyarrow.compute as pc

    if CHUNK_COLUMN not in batch.column_names:
        yield None, batch
        return
    for index in pc.unique(batch.column(CHUNK_COLUMN)).to_pylist():
        yield index, batch.filter(pc.equal(batch.column(CHUNK_COLUMN), index))


def _texts_and_errors(table: "pa.Table", text_column: str) -> tuple[list[str | None], list[str | None]]:
    """Usable texts (None where not) and reasons, by the readers' rules; an existing `error`
    column (the file job's read errors) is kept."""
    values = table.column(text_column).to_pylist()
    earlier = table.column("error").to_pylist() if "error" in table.column_names else [None] * len(values)
    texts, errors = [], []
    for value, error in zip(values, earlier):
        text, reason = (None, error) if error is not None else _join([value])
        texts.append(text)
        errors.append(reason)
    return texts, errors


class ClassifyBatches:
    """A Ray Data callable class: appends label, score, truncated, prob_<label> and error columns."""

    def __init__(self, source: ArtifactSource, text_column: str, variant: str, options: dict[str, Any]):
        from onnxpress.runtime.classifier import Classifier

        _limit_threads(options["threads"])
        self.text_column = text_column
        self.classifier = Classifier.load(source.local_path(), variant=variant, **options)

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        return pa.concat_tables([self._score(group) for _, group in _groups(batch)])

    def _score(self, table: "pa.Table") -> "pa.Table":
        import numpy as np
        import pyarrow as pa

        texts, errors = _texts_and_errors(table, self.text_column)
        positions = [k for k, t in enumerate(texts) if t is not None]
        result = self.classifier.classify([texts[k] for k in positions])
        labels = self.classifier.labels
        n = table.num_rows
        probs = np.full((n, len(labels)), np.nan, dtype=np.float32)
        probs[positions] = result.probs
        truncated: list[bool | None] = [None] * n
        for k, flag in zip(positions, result.truncated):
            truncated[k] = bool(flag)
        top = np.nan_to_num(probs, nan=-1.0).argmax(axis=1)
        scored = ~np.isnan(probs[:, 0]) if len(labels) else np.zeros(n, bool)
        columns = {
            "label": pa.array([labels[t] if ok else None for t, ok in zip(top, scored)], type=pa.string()),
            "score": pa.array(probs[np.arange(n), top], mask=~scored),
            "truncated": pa.array(truncated, type=pa.bool_()),
            **{f"prob_{name}": pa.array(probs[:, j], mask=~scored) for j, name in enumerate(labels)},
            "error": pa.array(errors, type=pa.string()),
        }
        for name, column in columns.items():
            table = _set_column(table, name, column)
        return table


class TranslateBatches:
    """A Ray Data callable class: appends `translation` (one line) and `error` columns."""

    def __init__(self, source: ArtifactSource, text_column: str, variant: str, options: dict[str, Any],
                 beam_size: int | None):
        from onnxpress.runtime.translator import Translator

        _limit_threads(options["threads"])
        self.text_column, self.beam_size = text_column, beam_size
        self.translator = Translator.load(source.local_path(), variant=variant, **options)

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        return pa.concat_tables([self._translate(group) for _, group in _groups(batch)])

    def _translate(self, table: "pa.Table") -> "pa.Table":
        import pyarrow as pa

        values = table.column(self.text_column).to_pylist()
        if CHUNK_COLUMN in table.column_names:  # a file chunk: blank and undecodable lines give blank lines
            errors: list[str | None] = [None] * len(values)
            texts = [v or "" for v in values]
        else:
            texts, errors = _texts_and_errors(table, self.text_column)
            texts = [t or "" for t in texts]
        lines = _translate_lines(self.translator, texts, self.beam_size)
        table = _set_column(table, "translation", pa.array(lines, type=pa.string()))
        return _set_column(table, "error", pa.array(errors, type=pa.string()))


def _set_column(table: "pa.Table", name: str, column: Any) -> "pa.Table":
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


# -- the Dataset API ----------------------------------------------------------------------------------
def classify_dataset(ds: "ray.data.Dataset", artifact: str | os.PathLike, *, text_column: str = "text",
                     workers: Workers | None = None, transport: str = "auto") -> "ray.data.Dataset":
    """`ds` with label, score, truncated, prob_<label> and error columns added (lazy, like any
    `map_batches`). A row without usable text gets its reason in `error` and nulls elsewhere."""
    workers = workers or Workers()
    variant = ModelInfo(artifact, "text-classification", workers).variant
    options = {**workers.load_options(), "max_batch_tokens": workers.max_batch_tokens,
               "max_batch_size": workers.max_batch_size}
    return ds.map_batches(ClassifyBatches, fn_constructor_args=(ship_artifact(artifact, transport), text_column,
                                                                variant, options), **workers.map_args())


def translate_dataset(ds: "ray.data.Dataset", artifact: str | os.PathLike, *, text_column: str = "text",
                      beam_size: int | None = None, workers: Workers | None = None,
                      transport: str = "auto") -> "ray.data.Dataset":
    """`ds` with `translation` and `error` columns added (lazy)."""
    workers = workers or Workers()
    variant = ModelInfo(artifact, "translation", workers).variant
    options = {**workers.load_options(), "max_batch_size": workers.max_batch_size}
    return ds.map_batches(TranslateBatches, fn_constructor_args=(ship_artifact(artifact, transport), text_column,
                                                                 variant, options, beam_size),
                          **workers.map_args())


# -- file jobs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pending:
    """A chunk as the job core sees it: its index and row count (the rows are in the object store)."""

    index: int
    rows: int

    def __len__(self) -> int:
        return self.rows


class ChunkPipeline:
    """Sends a job's uncommitted chunks through an actor pool and hands back each chunk's rows.

    The input is read once on the driver; each uncommitted chunk goes into the object store as
    one block, the pool computes the blocks in any order, and `result(index)` waits for a chunk's
    rows (buffering others that arrive first) so the job core can commit parts in input order.
    """

    def __init__(self, work: Path, part_suffix: str):
        self.work, self.part_suffix = work, part_suffix
        self._results: Iterator["pa.Table"] | None = None
        self._buffer: dict[int, list["pa.Table"]] = {}
        self.rows = 0

    def start(self, chunks: Iterator[Chunk], to_table: Any, transform: Any) -> Iterator[_Pending]:
        """Read every chunk, submit the uncommitted ones (`to_table`, then `transform` on the
        Dataset), and yield them all, committed or not, in order."""
        ray = require_ray()
        refs, pending = [], []
        for chunk in chunks:
            pending.append(_Pending(chunk.index, len(chunk)))
            self.rows += len(chunk)
            if not (self.work / part_name(chunk.index, self.part_suffix)).exists():
                refs.append(ray.put(to_table(chunk)))
        if refs:
            ds = transform(ray.data.from_arrow_refs(refs))
            self._results = iter(ds.iter_batches(batch_size=None, batch_format="pyarrow"))
        yield from pending

    def result(self, chunk: _Pending) -> "pa.Table":
        import pyarrow as pa
        import pyarrow.compute as pc

        while sum(t.num_rows for t in self._buffer.get(chunk.index, [])) < chunk.rows:
            if self._results is None:
                raise RuntimeError(f"chunk {chunk.index} was never submitted")
            batch = next(self._results, None)
            if batch is None:
                raise RuntimeError(f"the Ray job ended without chunk {chunk.index}")
            for index, group in _groups(batch):
                self._buffer.setdefault(index, []).append(group)
        table = pa.concat_tables(self._buffer.pop(chunk.index)).drop_columns([CHUNK_COLUMN])
        return table.take(pc.sort_indices(table, [("row", "ascending")]))


def _chunk_table(chunk: Chunk, with_ids: bool) -> "pa.Table":
    import numpy as np
    import pyarrow as pa

    n = len(chunk)
    columns = {CHUNK_COLUMN: pa.array(np.full(n, chunk.index, dtype=np.int64)),
               "row": pa.array(np.arange(chunk.start, chunk.start + n, dtype=np.int64)),
               "text": pa.array(chunk.texts, type=pa.string()),
               "error": pa.array(chunk.errors, type=pa.string())}
    if with_ids:
        columns["id"] = pa.array(chunk.ids, type=pa.string())
    return pa.table(columns)


class _OnRay:
    """What a Ray file job adds to its local job: the artifact to ship, the pool, the pipeline."""

    task = ""
    work: Path
    part_suffix: str

    def __init__(self, artifact: str | os.PathLike, config: Any, workers: Workers, transport: str = "auto"):
        super().__init__(ModelInfo(artifact, self.task, workers), config)  # type: ignore[call-arg]
        self.artifact_path, self.workers, self.transport = artifact, workers, transport
        self.pipeline = ChunkPipeline(self.work, self.part_suffix)


class RayScoreJob(_OnRay, ScoreJob):
    """`ScoreJob` whose chunks are scored by a Ray actor pool; parts, resume and merge unchanged."""

    task = "text-classification"

    def chunks(self) -> Iterator[Any]:
        workers = replace(self.workers, variant=self.classifier.variant)
        return self.pipeline.start(
            self.reader.chunks(), lambda chunk: _chunk_table(chunk, self.config.id_column is not None),
            lambda ds: classify_dataset(ds, self.artifact_path, workers=workers, transport=self.transport))

    def total_rows(self) -> int | None:
        return self.reader.total_rows or self.pipeline.rows or None

    def write_part(self, chunk: Any, fh: BinaryIO) -> None:
        import numpy as np
        import pyarrow.parquet as pq

        table = self.pipeline.result(chunk)
        rows = table.column("row").to_numpy()
        errors = table.column("error").to_pylist()
        ids = table.column("id").to_pylist() if "id" in table.column_names else None
        read = Chunk(chunk.index, int(rows[0]), [None] * len(rows), errors, ids)
        positions = [k for k, e in enumerate(errors) if e is None]
        labels = self.classifier.labels or [c[len("prob_"):] for c in table.column_names if c.startswith("prob_")]
        probs = np.stack([table.column(f"prob_{name}").to_numpy(zero_copy_only=False) for name in labels], axis=1)
        truncated = table.column("truncated").to_pylist()
        part = _part_table(read, labels, probs[positions], [truncated[k] for k in positions], positions,
                           self.config.probabilities)
        pq.write_table(part, fh)


class RayTranslateJob(_OnRay, TranslateJob):
    """`TranslateJob` whose chunks are translated by a Ray actor pool."""

    task = "translation"

    def chunks(self) -> Iterator[Any]:
        workers = replace(self.workers, variant=self.translator.variant)
        return self.pipeline.start(
            super().chunks(), lambda chunk: _chunk_table(chunk, False),
            lambda ds: translate_dataset(ds, self.artifact_path, beam_size=self.config.beam_size,
                                         workers=workers, transport=self.transport))

    def write_part(self, chunk: Any, fh: BinaryIO) -> None:
        write_lines(fh, self.pipeline.result(chunk).column("translation").to_pylist())


def score_file_on_ray(artifact: str | os.PathLike, config: ScoreConfig, workers: Workers | None = None, *,
                      transport: str = "auto") -> ScoreSummary:
    """Score a file as `run_score` does, its chunks computed on the connected Ray cluster."""
    job = RayScoreJob(artifact, config, workers or Workers(), transport)
    result = run_job(job, overwrite=config.overwrite, progress=config.progress)
    return ScoreSummary(rows=result.rows, scored=result.merged.rows, errors=result.merged.errors,
                        truncated=job.truncated, resumed_chunks=result.resumed_chunks, output=str(config.output),
                        errors_output=str(config.errors), seconds=result.seconds)


def translate_file_on_ray(artifact: str | os.PathLike, config: TranslateConfig, workers: Workers | None = None, *,
                          transport: str = "auto") -> TranslateSummary:
    """Translate a file as `run_translate` does, its chunks computed on the connected Ray cluster."""
    job = RayTranslateJob(artifact, config, workers or Workers(), transport)
    result = run_job(job, overwrite=config.overwrite, progress=config.progress)
    job.summary.resumed_chunks, job.summary.seconds = result.resumed_chunks, result.seconds
    return job.summary


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray for one command: connect to `address` ("auto", "ray://host:10001") or start a private
    local Ray (None); shut down on exit what this call started. An initialised Ray is reused."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    except ConnectionError as exc:
        raise UserError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}") from None
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield ray
    finally:
        ray.shutdown()


# -- the CLI's --engine ray ----------------------------------------------------------------------------
def workers_from_args(args: Any, ray: Any) -> Workers:
    """The pool from `--workers` (default: the cluster's CPUs / threads), `--threads-per-worker`,
    `--device` (cuda: one GPU per actor), `--variant` and the batch flags."""
    if args.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--engine ray runs on cpu or cuda, not {args.device}")
    threads = args.threads_per_worker
    count = args.workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    return Workers(workers=count, threads=threads, gpus=1.0 if args.device == "cuda" else 0.0, variant=args.variant,
                   max_batch_tokens=args.max_batch_tokens, max_batch_size=args.max_batch_size)


def _pool(artifact: str, task: str, workers: Workers) -> str:
    variant = ModelInfo(artifact, task, workers).variant
    return f"[{variant} on Ray: {workers.workers} actors x {workers.threads} threads]"


def score_command(args: Any) -> int:
    """`onnxpress score ... --engine ray`."""
    import sys

    from onnxpress.runtime.jobs.score import check_paths

    require_ray()
    config = ScoreConfig.from_args(args)
    check_paths(config)
    config.reader().check()  # before starting Ray
    with ray_session(args.address) as ray:
        workers = workers_from_args(args, ray)
        summary = score_file_on_ray(args.artifact, config, workers)
    print(f"{summary.line()} {_pool(args.artifact, 'text-classification', workers)}", file=sys.stderr)
    return 0


def translate_command(args: Any) -> int:
    """`onnxpress translate --input ... --output ... --engine ray`."""
    import sys

    if not (args.input and args.output):
        raise UserError("--engine ray translates files: give --input and --output")
    require_ray()
    config = TranslateConfig.from_args(args)
    with ray_session(args.address) as ray:
        workers = workers_from_args(args, ray)
        summary = translate_file_on_ray(args.artifact, config, workers)
    print(f"{summary.line()} {_pool(args.artifact, 'translation', workers)}", file=sys.stderr)
    return 0
