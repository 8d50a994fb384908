"""The ``servefn`` command: ``serve``, ``predict``, ``inspect``, ``openapi``, ``upload``, ``check``,
``convert``.

The top layer: it parses options and calls the library; ``main`` is the one place where errors
become messages and exit codes. Every command imports what it needs when it runs, so ``--help``
stays fast.
"""

from servefn.cli._main import main

__all__ = ["main"]
