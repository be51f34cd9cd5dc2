"""The HTTP server (FastAPI): KServe v2 and JSON routes over the runtime's dynamic batcher."""
