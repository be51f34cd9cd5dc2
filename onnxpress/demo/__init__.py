"""The `onnxpress demo` job: resumable steps and the report they produce."""
