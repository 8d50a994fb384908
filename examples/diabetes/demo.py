"""``make demo`` (third part): train if needed, serve the tree model, ask over HTTP.

Three requests: a patient with four serum tests missing, the same patient as a GET query, and
one whose sex is out of the schema's bounds (a 422 naming the field).
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

PATIENT = {"age": 50, "sex": 2, "bmi": 32.1, "bp": 101.0, "s1": 157, "s5": 4.86}


def main() -> None:
    with served(HERE) as base:
        url = f"{base}/Progression"
        headers = {"Content-Type": "application/json"}
        post = urllib.request.Request(url, data=json.dumps(PATIENT).encode(), headers=headers)
        status, answer = ask(post)
        print(f"POST {url} {json.dumps(PATIENT)}\n  -> {status} {answer}")
        query = urllib.parse.urlencode(PATIENT)
        status, answer = ask(urllib.request.Request(f"{url}?{query}"))
        print(f"GET  {url}?{query}\n  -> {status} {answer}")
        odd = json.dumps({**PATIENT, "sex": 3}).encode()
        status, answer = ask(urllib.request.Request(url, data=odd, headers=headers))
        print(f"POST {url} (sex 3)\n  -> {status} {answer.get('errors')}")


if __name__ == "__main__":
    main()
