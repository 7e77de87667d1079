"""Creating thousands of Keras variables without compiling a kernel for each.

TensorFlow gives the `VarHandleOp` behind every eager variable a
`debug_name` attribute: the name scope the variable is created in, which
Keras makes unique per layer. Eager kernels are cached by their attributes,
so each new layer's variables instantiate new `VarHandleOp` kernels: a
third of the time it takes to build the EoiNAS supernet at the paper's size
(benchmarks/RESULTS.md, `bench_op_functions.py --parts variables`). Neither
Keras nor TensorFlow has a public switch for it, hence this.

The name is used only in TensorFlow's own error messages about a resource;
the variables' Keras names and paths, which checkpoints use, are unchanged.
"""

import contextlib
import inspect


@contextlib.contextmanager
def fast_variable_creation():
    """Within it, eager variables are created without a per-variable `debug_name`.

    Variables get the same names, paths, values and checkpoints as without
    it. A TensorFlow without the attribute is left as it is.

    Example:

    >>> with fast_variable_creation():
    ...     model.build(input_shape)
    """
    try:
        from tensorflow.python.ops import gen_resource_variable_ops as generated
    except ImportError:  # pragma: no cover - another TensorFlow layout: nothing to speed up
        yield
        return
    original = getattr(generated, "var_handle_op", None)
    if original is None or "debug_name" not in inspect.signature(original).parameters:
        yield  # pragma: no cover - a TensorFlow without the attribute
        return

    import tensorflow as tf

    def var_handle_op(*args, **kwargs):
        if tf.executing_eagerly():
            kwargs["debug_name"] = ""  # the op's default: one cached kernel per shape and dtype
        return original(*args, **kwargs)

    generated.var_handle_op = var_handle_op
    try:
        yield
    finally:
        generated.var_handle_op = original
