"""Each optimizer's docstring documents its constructor: every parameter,
with the default the signature really has, and its update rule."""

import ast
import inspect
import re

import pytest

from fastnn import optimizers

CLASSES = [optimizers.Optimizer, *optimizers.OPTIMIZERS.values()]
_ENTRY = re.compile(r"^    (\w+) : ([^\n]*)$", re.MULTILINE)


def _documented(cls):
    """{name: type line} from the Parameters section of ``cls.__doc__``."""
    doc = cls.__doc__
    section = re.search(r"\n    Parameters\n    -+\n(.*?)(?:\n\n    \w+\n    -+\n|\Z)",
                        doc, re.DOTALL)
    assert section, f"{cls.__name__}: no Parameters section"
    return dict(_ENTRY.findall(section.group(1)))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_docstring_names_every_parameter_with_its_default(cls):
    signature = inspect.signature(cls.__init__)
    names = [n for n in signature.parameters if n != "self"]
    documented = _documented(cls)
    assert list(documented) == names
    for name in names:
        default = signature.parameters[name].default
        found = re.search(r", default (.+)$", documented[name])
        if default is inspect.Parameter.empty:
            assert found is None, f"{cls.__name__}.{name} has no default"
        else:
            assert found, f"{cls.__name__}.{name}: default not documented"
            assert ast.literal_eval(found.group(1)) == default, (cls.__name__, name)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_docstring_has_summary_algorithm_and_references(cls):
    lines = cls.__doc__.splitlines()
    assert lines[0].strip() and not lines[1].strip()
    assert "::\n\n        " in cls.__doc__  # the algorithm block
    assert "\n    References\n    ----------\n    .. [1] " in cls.__doc__


def test_the_parser_sees_a_wrong_default():
    class Wrong(optimizers.SGD):
        __doc__ = optimizers.SGD.__doc__.replace("lr : float, default 1e-3",
                                                 "lr : float, default 1e-2")
    with pytest.raises(AssertionError):
        test_docstring_names_every_parameter_with_its_default(Wrong)
