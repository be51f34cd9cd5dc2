"""Puts tests/ on sys.path, so test folders share the model builders kept here
(`tiny_classifier.py`, `toy_translator.py`) without shipping them in the package."""
