"""``make demo`` (second part): train if needed, serve the penguin model, ask over HTTP.

Three requests: a penguin with two measurements missing (the model imputes them), the same
penguin as a GET query, and one from an island the model never saw (a 422 naming the field and
the allowed values).
"""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "iris"))
from demo import ask, served  # noqa: E402  (the iris demo's host runner)

PENGUIN = {"island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0, "sex": "male"}


def main() -> None:
    with served(HERE) as base:
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


if __name__ == "__main__":
    main()
