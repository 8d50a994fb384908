"""Check an app against the real Azure Functions Python worker library on Python 3.13.

Two commands:

``build``  (any Python) creates ``.worker313/``: a Python 3.13 venv with azure-functions 2.x, the
           worker library ``azure-functions-runtime`` and this servefn (editable). It is quick
           when the venv is current (a stamp file records what it was built from). When the 3.13
           interpreter is missing it says so and exits 0, and the pytest check then skips (or
           fails under CI=true) with the same reason.
``run APP`` (inside that venv) indexes ``APP/function_app.py`` with the worker's own loader
           (``azure_functions_runtime.loader.index_function_app`` and
           ``process_indexed_function``, which validate parameters against bindings exactly as
           the host's worker does), then calls the indexed ``predict`` function through the
           worker's ``execute_sync``/``execute_async`` with real ``azure.functions.HttpRequest``
           objects and prints one JSON line with what it saw.

The worker library receives its gRPC message classes (``protos``) from the host's proxy worker,
which is not on PyPI. ``_Protos`` stands in for the few it touches while indexing: records
that keep their fields, and the ``BindingInfo`` direction/data-type numbers of
FunctionRpc.proto. Everything else here is the real worker code.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".worker313"
STAMP_NAME = ".stamp-worker"
REQUIREMENTS = ("azure-functions-runtime>=1.3", "azure-functions>=2")
FLOWER = {"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}


def default_python() -> Path:
    """``$(pyenv root)/versions/3.13.0/bin/python3.13``, where these machines keep Python 3.13."""
    root = os.environ.get("PYENV_ROOT")
    if root is None and shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        root = found.stdout.strip() or None
    base = Path(root) if root else Path.home() / ".pyenv"
    return base / "versions" / "3.13.0" / "bin" / "python3.13"


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def build_fingerprint() -> str:
    """What the venv is built from: the requirements, servefn's dependencies and this script."""
    digest = hashlib.sha256("\n".join(REQUIREMENTS).encode())
    digest.update(_servefn_dependencies())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def _servefn_dependencies() -> bytes:
    """servefn's own requirements (an editable install needs nothing else from pyproject)."""
    text = (ROOT / "pyproject.toml").read_bytes()
    try:
        import tomllib
    except ImportError:  # Python 3.10: the whole file stands in
        return text
    project = tomllib.loads(text.decode())["project"]
    wanted = {key: project.get(key) for key in ("requires-python", "dependencies")}
    return json.dumps(wanted, sort_keys=True).encode()


def missing_reason(venv: Path = VENV) -> str | None:
    """Why the check cannot run (no interpreter, venv not built or stale), or None."""
    if not venv_python(venv).exists():
        python = default_python()
        if not python.exists():
            return (
                f"Python 3.13 is missing at {python}; install it (pyenv install 3.13.0) and "
                "run `make worker313`"
            )
        return f"the Python 3.13 worker venv {venv} is not built; run `make worker313`"
    stamp = venv / STAMP_NAME
    if not stamp.exists() or stamp.read_text().strip() != build_fingerprint():
        return f"the Python 3.13 worker venv {venv} is out of date; run `make worker313`"
    return None


def build(python: Path, venv: Path) -> int:
    """Create or refresh the 3.13 venv; a current one is left alone."""
    stamp = venv / STAMP_NAME
    fingerprint = build_fingerprint()
    if stamp.exists() and stamp.read_text().strip() == fingerprint:
        return 0
    if not python.exists():
        print(
            f"worker check: Python 3.13 is missing at {python}; the worker-library check "
            "cannot run here (install it with `pyenv install 3.13.0`)",
            file=sys.stderr,
        )
        return 0
    if not venv_python(venv).exists():
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *REQUIREMENTS, "-e", str(ROOT)], check=True)
    stamp.write_text(fingerprint + "\n")
    return 0


class _Record:
    """A protobuf message stand-in: keeps the keyword arguments it is built with."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _BindingInfo(_Record):
    # FunctionRpc.proto, message BindingInfo: enum Direction and enum DataType
    out = 1
    inout = 2
    undefined = 0
    string = 1
    binary = 2
    stream = 3


class _Protos:
    BindingInfo = _BindingInfo
    RpcFunctionMetadata = _Record
    RpcRetryOptions = _Record


def run(app: Path) -> int:
    """Index ``app`` with the worker library and call its ``predict`` function."""
    import azure.functions as func
    from azure_functions_runtime import loader
    from azure_functions_runtime.bindings.meta import load_binding_registry
    from azure_functions_runtime.functions import Registry
    from azure_functions_runtime.utils.executor import execute_async, execute_sync
    from azure_functions_runtime.version import VERSION

    app = app.resolve()
    os.chdir(app)
    sys.path.insert(0, str(app))  # the host puts the app folder on sys.path
    load_binding_registry()  # what the worker does on its init request, before indexing
    indexed = loader.index_function_app(str(app / "function_app.py"))
    registry = Registry()
    metadata, _ = loader.process_indexed_function(_Protos, registry, indexed, str(app))
    by_name = {m.name: registry.get_function(m.function_id) for m in metadata}
    predict = by_name["predict"]
    raw = [json.loads(b) for m in metadata if m.name == "predict" for b in m.raw_bindings]
    trigger = next(b for b in raw if b["type"] == "httpTrigger")

    def call(body: dict[str, Any], accept: str) -> Any:
        request = func.HttpRequest(
            "POST",
            f"http://localhost/api/{trigger['route']}",
            headers={"Content-Type": "application/json", "Accept": accept},
            body=json.dumps(body).encode(),
        )
        bindings = {trigger["name"]: request}
        if predict.is_async:
            return asyncio.run(execute_async(predict.func, bindings))
        return execute_sync(predict.func, bindings)

    text = call(FLOWER, "text/plain")
    document = call(FLOWER, "application/json")
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "azure_functions": func.__version__,
                "worker_library": VERSION,
                "functions": sorted(by_name),
                "route": trigger["route"],
                "methods": trigger.get("methods"),
                "is_http_func": predict.is_http_func,
                "is_async": predict.is_async,
                "text_status": text.status_code,
                "text_body": text.get_body().decode(),
                "json_status": document.status_code,
                "json_body": json.loads(document.get_body()),
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="create or refresh the 3.13 venv")
    build_parser.add_argument("--python", type=Path, default=None, help="the 3.13 interpreter")
    build_parser.add_argument("--venv", type=Path, default=VENV, help="where to build it")
    run_parser = commands.add_parser("run", help="index and call an app (inside the venv)")
    run_parser.add_argument("app", type=Path, help="the folder holding function_app.py")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.python or default_python(), args.venv)
    return run(args.app)


if __name__ == "__main__":
    sys.exit(main())
