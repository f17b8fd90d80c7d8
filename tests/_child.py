"""The environment for a child Python process of a test: the same fastnn as
the tests imported (the installed package), never the uncompiled source tree."""

import os

import fastnn

#: The folder that holds the ``fastnn`` package the tests run against.
FASTNN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))


def child_env(**extra):
    """``os.environ`` plus ``extra``, with :data:`FASTNN_ROOT` first on
    PYTHONPATH."""
    paths = [FASTNN_ROOT] + [p for p in os.environ.get("PYTHONPATH", "")
                             .split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **extra)
