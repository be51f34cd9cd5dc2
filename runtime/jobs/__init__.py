"""Resumable file jobs: read rows, run them in chunks, write part files, merge.

- `resumable`: the protocol, written once (work folder, fingerprint, parts, resume, verified merge)
- `durable`: crash-safe writes (also used by training checkpoints)
- `readers` / `writers`: csv, jsonl, parquet and text lines in; parquet, csv, jsonl and text out
- `score` / `translate`: the two jobs' specifics; `progress`: the optional progress bar
"""
