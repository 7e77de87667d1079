"""Command-line runners, one module per search method, and the other commands (`tools`).

Each method module exposes `OPTIONS`, `check(args)` and `run(args)`; the
modules load no TensorFlow until `run`.
"""
