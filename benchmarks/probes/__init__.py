"""One-question measurements kept runnable (`python -m onnxpress.benchmarks.probes.NAME --help`)."""
