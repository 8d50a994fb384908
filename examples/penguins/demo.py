"""``make demo`` (second part): train if needed, serve the penguin model, ask over HTTP.

Three requests: a penguin with two measurements missing (the model imputes them), the same
penguin as a GET query, and one from an island the model never saw (a 422 naming the field and
the allowed values).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "iris"))
from demo import free_port, wait_until_up  # noqa: E402  (the iris demo's helpers)

PENGUIN = {"island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0, "sex": "male"}


def ask(request: urllib.request.Request) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def main() -> None:
    if not (HERE / "model.zip").exists():
        subprocess.run([sys.executable, str(HERE / "train.py")], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MODEL_URI"}  # the local model.zip
    command = [sys.executable, "-m", "servefn", "serve", str(HERE), "--port", str(port)]
    host = subprocess.Popen(command, env=env, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api"
        wait_until_up(f"{base}/health", host)
        body = json.dumps(PENGUIN).encode()
        post = urllib.request.Request(
            f"{base}/Species", data=body, headers={"Content-Type": "application/json"}
        )
        status, answer = ask(post)
        print(f"POST {base}/Species {json.dumps(PENGUIN)}\n  -> {status} {answer}")
        query = urllib.parse.urlencode(PENGUIN)
        status, answer = ask(urllib.request.Request(f"{base}/Species?{query}"))
        print(f"GET  {base}/Species?{query}\n  -> {status} {answer}")
        stranger = json.dumps({**PENGUIN, "island": "Anvers"}).encode()
        bad = urllib.request.Request(
            f"{base}/Species", data=stranger, headers={"Content-Type": "application/json"}
        )
        status, answer = ask(bad)
        print(f"POST {base}/Species (island 'Anvers')\n  -> {status} {answer.get('errors')}")
    finally:
        host.terminate()
        host.wait(timeout=10)


if __name__ == "__main__":
    main()
