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


def add_ray_engine(parser: argparse.ArgumentParser) -> None:
    """`--engine local|ray` with `--address`, `--workers`, `--threads-per-worker` (docs/ray.md)."""
    from onnxpress.cli import positive_int

    ray = parser.add_argument_group("on Ray (--engine ray; needs onnxpress[ray]; docs/ray.md)")
    ray.add_argument("--engine", choices=["local", "ray"], default="local",
                     help="compute the chunks in this process, or in a pool of Ray actors")
    ray.add_argument("--address", default=None,
                     help="Ray cluster: auto, or ray://HOST:10001 (default: a private local Ray)")
    ray.add_argument("--workers", type=positive_int, default=None,
                     help="actors (default: the cluster's CPUs / --threads-per-worker)")
    ray.add_argument("--threads-per-worker", type=positive_int, default=1,
                     help="CPUs each actor reserves = its ONNX Runtime threads")
