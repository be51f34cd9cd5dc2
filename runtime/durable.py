"""Compatibility import: the crash-safe writes live in `onnxpress.runtime.jobs.durable`."""
from onnxpress.runtime.jobs.durable import atomic_write, atomic_write_text, fsync_dir

__all__ = ["atomic_write", "atomic_write_text", "fsync_dir"]
