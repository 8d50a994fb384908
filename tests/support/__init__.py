"""Helpers shared by the tests (imported as ``support.<module>``; tests/ is on sys.path).

- ``azurite``, ``iris``: pytest plugins (loaded by tests/conftest.py's ``pytest_plugins``):
  Azurite as a fixture, and the iris example's schemas, data, app files and trained model.
- ``oip``: the Open Inference Protocol: a regressor, an app with ``add_inference_routes``,
  requests in JSON and binary form, and the one check of an ``{"error": ...}`` answer.
- ``problems``: the one check of an RFC 9457 problem response.
- ``markers``: a plugin (also loaded by conftest.py): a test that uses Azurite is marked
  ``integration``.
- ``reliability``: small real models and a blob-backed app for the reliability tests.
- ``repositories``: model repositories (folders of ``NAME/model.zip``) and an app serving one.
- ``servehost``: ``servefn serve`` as a subprocess.
- ``standins``: an injectable clock, a trivial artifact parser, a stateless predictor base.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root folder."""
APPS = Path(__file__).resolve().parents[1] / "apps"
"""tests/apps: small function apps the host and CLI tests serve."""
