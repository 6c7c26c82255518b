"""Benchmarks (not tests): the update path, broadcast fan-out and memory.

Run them all with `.venv/bin/python -m bench`; each writes JSON into bench/results/.
"""
