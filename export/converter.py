"""The export skeleton every exporter runs, modelled on CTranslate2's `converters.Converter`.

`Converter.convert(out)` owns the pipeline; a subclass supplies only what differs per model family:

    _check()                          cheap checks of the inputs, before any work (optional)
    _load()                           the source model
    _write(source, staging, work)     graphs, variants and tokenizers into the partial folder;
                                      returns the manifest that lists them
    _validate(source, staging, m)     every variant through the runtime's own Engine / Classifier /
                                      Translator against the source, gated: metrics, parity,
                                      `servable` and `reason` land in the manifest; returns a report

The base refuses an existing output unless `overwrite` (and never replaces a directory that is
not an artifact), stages everything in a partial folder beside the output, stamps versions and
time, writes the manifest (with every file's sha256) and renames the folder into place. On any
error nothing is left at the output.
"""
from __future__ import annotations

import abc
import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from onnxpress.errors import UserError
from onnxpress.export.manifest import utc_now, versions
from onnxpress.export.staging import check_output_dir, staged_directory
from onnxpress.runtime.artifact import Manifest

Source = TypeVar("Source")
Options = TypeVar("Options")


@dataclass
class ExportResult:
    """What an export wrote and measured."""

    out: Path
    manifest: Manifest
    report: dict[str, Any]  # the exporter's validation report (shape depends on the exporter)

    @property
    def servable(self) -> list[str]:
        return [name for name, v in self.manifest.variants.items() if v.servable]


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Converter(abc.ABC, Generic[Source]):
    """Base class of the exporters: the pipeline of the module docstring."""

    def __init__(self, *, overwrite: bool = False, log: Callable[[str], None] | None = None):
        self.overwrite = overwrite
        self.log = log or stderr_log

    def convert(self, out: str | Path) -> ExportResult:
        """Export into the artifact directory `out`; raises `UserError` on bad input."""
        out = Path(out)
        self._check()
        check_output_dir(out, self.overwrite)
        with tempfile.TemporaryDirectory(prefix="onnxpress-export-") as work, staged_directory(out) as staging:
            source = self._load()
            manifest = self._write(source, staging, Path(work))
            manifest.versions = versions()
            manifest.created = utc_now()
            report = self._validate(source, staging, manifest)
            manifest.save(staging)
        return self._result(out, manifest, report)

    def _check(self) -> None:
        """Refuse bad inputs before any expensive step."""

    @abc.abstractmethod
    def _load(self) -> Source:
        raise NotImplementedError

    @abc.abstractmethod
    def _write(self, source: Source, staging: Path, work: Path) -> Manifest:
        raise NotImplementedError

    @abc.abstractmethod
    def _validate(self, source: Source, staging: Path, manifest: Manifest) -> dict[str, Any]:
        raise NotImplementedError

    def _result(self, out: Path, manifest: Manifest, report: dict[str, Any]) -> ExportResult:
        return ExportResult(out=out, manifest=manifest, report=report)


def parse_variants(spec: str | Sequence[str], known: Sequence[str]) -> list[str]:
    """Variant names from "fp32,int8" or a list, checked against `known` and deduplicated in order."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown variant {unknown[0]!r} (choose from {', '.join(known)})")
    if not names:
        raise UserError(f"no variants requested (choose from {', '.join(known)})")
    return list(dict.fromkeys(names))


def options_from_args(options_type: type[Options], args: argparse.Namespace, **values: Any) -> Options:
    """`options_type` (a dataclass) filled from the parsed flags whose `dest` names one of its fields."""
    parsed = {**vars(args), **values}
    return options_type(**{f.name: parsed[f.name] for f in fields(options_type) if f.name in parsed})
