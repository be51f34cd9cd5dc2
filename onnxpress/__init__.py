"""onnxpress: optimized ONNX inference for attention models."""
import os

__version__ = "0.1.0"

# ONNX Runtime 1.29+ on Linux and macOS starts telemetry when it is imported: a device id and an event
# cache under ~/.cache/Microsoft, uploads in the background (and a warning when HOME is not writable).
# An inference engine for services and batch jobs should make no outbound connection of its own, so
# onnxpress turns it off before any of its modules imports onnxruntime; a variable set by the user wins.
# (An app that imported onnxruntime before onnxpress has decided already: ORT latches it at start-up.)
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
