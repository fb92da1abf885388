"""Benchmarks: ``python -m bench`` (``make bench``) times the inference function against raw onnxruntime.

Each figure is a ratio or a difference measured in one run, on one machine, with the compared variants
interleaved; ``bench/results.json`` keeps every figure with the machine it was measured on.
"""
