"""One module per `onnxpress` subcommand, plus the flags they share.

Every command spells a shared option the same way: `--overwrite`, `--beam-size`, `--threads`,
`--data`. Old spellings stay accepted as hidden aliases (`--force`, `--beam`).
"""
from __future__ import annotations

import argparse


def add_overwrite(parser: argparse.ArgumentParser, text: str) -> None:
    """`--overwrite` (dest `overwrite`), with the old `--force` as a hidden alias."""
    parser.add_argument("--overwrite", action="store_true", help=text)
    parser.add_argument("--force", dest="overwrite", action="store_true", help=argparse.SUPPRESS)


def add_beam_size(parser: argparse.ArgumentParser, default: int | None, text: str) -> None:
    """`--beam-size N` (dest `beam_size`), with the old `--beam` as a hidden alias."""
    parser.add_argument("--beam-size", type=int, default=default, help=text)
    parser.add_argument("--beam", dest="beam_size", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
