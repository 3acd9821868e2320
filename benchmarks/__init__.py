"""Benchmarks of keras_attn against Keras's own attention; run `python benchmarks/run.py`."""
