"""The interactive docs page at ``/api/docs``: Swagger UI from packaged files, in a real browser.

The page and its files are checked through the local host's ASGI app; then the ``servefn``
console script serves the iris model (and the iris function app) and headless Chromium, driven
by Selenium through Debian's chromedriver, opens the page, tries Predict with the walkthrough's
flower and must show ``Iris-virginica``. The screenshot goes to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from servefn.devhost._host import DevHost
from support import ROOT
from support.azurite import free_port
from support.iris import FLOWER, example_app
from support.problems import check_problem

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1500",
)


def unavailable(reason: str) -> None:
    """Skip, or fail under CI=true: a component that cannot start is a failure there."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def iris_app(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the iris function app with its model."""
    return example_app(tmp_path_factory.mktemp("apps") / "iris", trained_model)


def asgi_get(host: DevHost, path: str) -> httpx.Response:
    """GET ``path`` from the host's ASGI app, in process."""
    import asyncio

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=host.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(path)

    return asyncio.run(get())


# -- the page and its files -------------------------------------------------------------------


def test_the_page_loads_only_its_own_files(trained_model: Path) -> None:
    host = DevHost(trained_model)
    page = asgi_get(host, "/api/docs")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references and all(ref.startswith("/api/docs/") for ref in references)
    assert "<script>" not in page.text  # no inline script: the CSP allows none
    assert 'data-openapi-url="/api/openapi.json"' in page.text
    for ref in references:
        asset = asgi_get(host, ref)
        assert asset.status_code == 200 and asset.content, ref
    bundle = asgi_get(host, "/api/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content and len(bundle.content) > 500_000
    assert asgi_get(host, "/api/docs/swagger-ui.css").headers["content-type"].startswith("text/css")
    missing = asgi_get(host, "/api/docs/../../etc/passwd")
    assert missing.status_code == 404
    unknown = asgi_get(host, "/api/docs/swagger-ui.js.map")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    check_problem(unknown, 404)


def test_an_app_with_add_health_routes_gets_a_page_on_its_own_document(iris_app: Path) -> None:
    host = DevHost(iris_app)
    assert host.docs_url() == "http://127.0.0.1:7071/api/docs"
    assert "Docs: http://127.0.0.1:9000/api/docs (try the API in a browser)" in host.describe(9000)
    page = asgi_get(host, "/api/docs")
    assert 'data-openapi-url="/api/openapi.json"' in page.text
    assert "docs" not in [f.name for f in host.functions]  # servefn's page, not the app's


def test_an_app_without_an_openapi_route_gets_a_generated_document(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            import azure.functions as func
            from servefn import Schema, column
            from servefn.azure import serve_http

            class Point(Schema):
                x: float = column(0, name="X")

            class Answer(Schema):
                y: float = column(name="Y")

            app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

            @app.route(route="score", methods=["POST"])
            @serve_http(Point, Answer, model="model.zip")
            def score(model, inputs):
                return [{"Y": r.x} for r in inputs]
            """
        )
    )
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    host = DevHost(tmp_path)
    page = asgi_get(host, "/api/docs")
    assert 'data-openapi-url="/api/docs/openapi.json"' in page.text
    document = asgi_get(host, "/api/docs/openapi.json").json()
    assert set(document["paths"]) == {"/api/score"} and "security" not in document
    assert document["paths"]["/api/score"]["post"]["operationId"] == "score_post"


def test_an_app_that_serves_its_own_docs_route_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            import azure.functions as func

            app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

            @app.route(route="docs", methods=["GET"])
            def docs(req: func.HttpRequest) -> func.HttpResponse:
                return func.HttpResponse("the app's own docs")

            @app.route(route="openapi.json", methods=["GET"])
            def openapi(req: func.HttpRequest) -> func.HttpResponse:
                return func.HttpResponse("{}", mimetype="application/json")
            """
        )
    )
    host = DevHost(tmp_path)
    assert asgi_get(host, "/api/docs").text == "the app's own docs"
    assert host.docs_url() is None
    assert "  docs: the app's function 'docs' serves /api/docs" in host.describe().splitlines()


# -- in a browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium from Debian, driven through its chromedriver; a fresh profile."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        unavailable(
            f"{', '.join(missing)} not installed: run `make browser` "
            "(apt-get install chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    except WebDriverException as exc:
        unavailable(f"Chromium did not start: {exc.msg}")
    try:
        yield driver
    finally:
        driver.quit()


class Served:
    """``servefn serve TARGET --port N`` as a subprocess, stopped by its pid."""

    def __init__(self, target: Path) -> None:
        self.port = free_port()
        script = Path(sys.executable).with_name("servefn")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "servefn"]
        self.process = subprocess.Popen(
            [*command, "serve", str(target), "--port", str(self.port), "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "MODEL_URI"},
        )
        self.base = f"http://127.0.0.1:{self.port}/api"
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None and time.monotonic() < deadline, self.stop()
            try:
                httpx.get(f"{self.base}/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stderr is not None
        return self.process.stderr.read()


def try_predict(driver: WebDriver, url: str, flower: dict[str, Any]) -> str:
    """Open the docs page, try POST Predict with ``flower`` and return the response body shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    operation = "#operations-default-predict_post"
    wait = WebDriverWait(driver, 30)
    driver.get(url)
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, f"{operation} .opblock-summary")))
    driver.find_element(By.CSS_SELECTOR, f"{operation} .opblock-summary").click()
    body = wait.until(
        ready.visibility_of_element_located((By.CSS_SELECTOR, f"{operation} textarea"))
    )
    body.clear()
    body.send_keys(json.dumps(flower))
    driver.find_element(By.CSS_SELECTOR, f"{operation} button.execute").click()
    answer = (By.CSS_SELECTOR, f"{operation} .live-responses-table .response-col_description pre")
    wait.until(ready.text_to_be_present_in_element(answer, "PredictedLabel"))
    status = driver.find_element(
        By.CSS_SELECTOR, f"{operation} .live-responses-table tbody .response-col_status"
    )
    assert status.text.strip() == "200"
    shown = driver.find_element(*answer)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", shown)
    return str(shown.text)


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.parametrize("served_as", ["model", "app"])
def test_trying_predict_in_the_browser_shows_iris_virginica(
    served_as: str, browser: WebDriver, trained_model: Path, iris_app: Path
) -> None:
    server = Served(trained_model if served_as == "model" else iris_app)
    try:
        shown = try_predict(browser, f"{server.base}/docs", FLOWER)
        ARTIFACTS.mkdir(exist_ok=True)
        name = "docs-page.png" if served_as == "model" else "docs-page-app.png"
        screenshot = ARTIFACTS / name
        assert browser.save_screenshot(str(screenshot))
        problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        errors = server.stop()
    assert json.loads(shown)["PredictedLabel"] == "Iris-virginica"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
    assert problems == []  # no CSP violation, no failed request, no script error
    assert "Traceback" not in errors
