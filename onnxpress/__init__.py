"""onnxpress: optimized ONNX inference for attention models."""
__version__ = "0.1.0"
