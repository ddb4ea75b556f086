"""Meta tests: every public name exists and every public docstring documents exactly its parameters."""

import importlib
import inspect

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc

PUBLIC_MODULES = [
    "hadasklearn",
    "hadasklearn.datasets",
    "hadasklearn.exceptions",
    "hadasklearn.landmarks",
    "hadasklearn.model_selection",
    "hadasklearn.nn",
    "hadasklearn.stats",
    "hadasklearn.utils",
]


def _public_objects():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if not name.startswith("_"):
                yield f"{module_name}.{name}", getattr(module, name)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_sorted_and_resolves(module_name):
    module = importlib.import_module(module_name)
    assert list(module.__all__) == sorted(module.__all__), f"{module_name}.__all__ is not sorted"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{module_name}.{name} is missing"


def _documented_callables():
    for qualname, obj in _public_objects():
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            yield qualname, obj
        elif inspect.isfunction(obj):
            yield qualname, obj


@pytest.mark.parametrize("qualname,obj", list(_documented_callables()), ids=lambda v: v if isinstance(v, str) else "")
def test_docstring_parameters_match_signature(qualname, obj):
    assert obj.__doc__, f"{qualname} has no docstring"
    if inspect.isclass(obj):
        init = obj.__dict__.get("__init__")
        if init is None:  # dataclasses, NamedTuples and classes inheriting __init__
            return
        doc = ClassDoc(obj)
        signature = inspect.signature(obj)
    else:
        doc = FunctionDoc(obj)
        signature = inspect.signature(obj)
    documented = [p.name.split(":")[0].strip() for p in doc["Parameters"]]
    documented = [n for name in documented for n in name.replace(" ", "").split(",")]
    actual = [
        name
        for name, p in signature.parameters.items()
        if name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if not documented and not actual:
        return
    assert documented == actual, f"{qualname}: documented {documented} but signature has {actual}"
