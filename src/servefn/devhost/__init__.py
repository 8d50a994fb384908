"""``servefn serve``: runs a Functions app's HTTP functions locally, the way ``func start`` does.

Indexing ``function_app.py``, ``local.settings.json``, host.json's route prefix, route templates,
the ASGI app served by uvicorn, the zero-code model app, the Swagger page and ``servefn check``.
This is a host: it may import every layer below it (``servefn.azure``, ``servefn.http``,
``servefn.loaders``, ``servefn.model``), and only ``servefn.cli`` imports it.
"""

from servefn.devhost._host import DevHost
from servefn.errors import AppNotFoundError, DevHostError

__all__ = ["AppNotFoundError", "DevHost", "DevHostError"]
