"""Resumable file jobs: read rows, run them in chunks, write part files, merge (see resumable.py)."""
