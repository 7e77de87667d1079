"""Package attributes loaded on first use (PEP 562), so importing a method package loads no TensorFlow."""

import importlib


def exports(package, names):
    """`(__getattr__, __dir__)` for `package` that import `names[attr]` (a submodule) on first access.

    A package never exports a name equal to one of its submodules: once that
    submodule is imported, Python binds the name to the module.
    """

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
            globals_of_package = importlib.import_module(package).__dict__
            globals_of_package[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(importlib.import_module(package).__dict__) | set(names))

    return __getattr__, __dir__
