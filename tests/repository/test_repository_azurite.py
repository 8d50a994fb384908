"""A model repository under a blob prefix on real Blob Storage (Azurite): ``blob://`` through
azure-storage-blob, and ``az://`` through adlfs (the fsspec store).

The app is a real FunctionApp with ``serve_models``, called as the worker calls it; the clock
of the listing and of the models' checks is injected, so "the next check" is a step of a test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from servefn.repository import ModelRepository
from support.azurite import Azurite
from support.problems import check_problem, strict_json
from support.reliability import Clock
from support.repositories import HOUSE, ModelsApp, iris_model, price_model

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

PREFIX = "prod/models"
KINDS = ["blob", "az"]


def upload(container: ContainerClient) -> Callable[[str, bytes], None]:
    def put(path: str, data: bytes) -> None:
        container.upload_blob(f"{PREFIX}/{path}", data, overwrite=True)

    return put


def served(kind: str, container: ContainerClient, azurite: Azurite, clock: Clock) -> ModelsApp:
    location = f"{kind}://{container.container_name}/{PREFIX}/"
    repository = ModelRepository(
        location,
        connection=azurite.connection_string,
        clock=clock,
        refresh_after=60,
        list_after=60,
    )
    return ModelsApp(repository)


@pytest.fixture
def stocked(blob_container: ContainerClient) -> ContainerClient:
    put = upload(blob_container)
    put("iris/model.zip", iris_model("iris"))
    put("house/model.zip", price_model(2.0))
    put("tiers/1/model.zip", iris_model("tier-1"))
    put("tiers/2/model.zip", iris_model("tier-2"))
    put("tiers/current", b"1")
    blob_container.upload_blob("elsewhere/iris/model.zip", iris_model("outside"))  # not listed
    return blob_container


@pytest.mark.parametrize("kind", KINDS)
def test_two_models_from_a_blob_prefix(
    kind: str, stocked: ContainerClient, azurite: Azurite
) -> None:
    app = served(kind, stocked, azurite, Clock())
    assert app.repository.names() == ["house", "iris", "tiers"]
    assert app.label("iris") == "iris"
    house = app.predict("house", body=HOUSE)
    assert house.status_code == 200 and strict_json(house.get_body()) == {"Score": 203.0}
    assert app.label("tiers") == "tier-1" and app.label("tiers", "2") == "tier-2"
    check_problem(app.predict("outside"), 404)
    assert app.repository.uri == f"{kind}://{stocked.container_name}/{PREFIX}/"


@pytest.mark.parametrize("kind", KINDS)
def test_added_updated_and_deleted_at_the_next_check_nothing_else_disturbed(
    kind: str, stocked: ContainerClient, azurite: Azurite
) -> None:
    clock = Clock()
    app = served(kind, stocked, azurite, clock)
    assert app.label("iris") == "iris" and app.label("tiers") == "tier-1"
    house = app.repository.resolve("house")[1]
    put = upload(stocked)
    put("lily/model.zip", iris_model("lily"))  # added
    put("iris/model.zip", iris_model("iris-2", serial=1))  # updated
    put("tiers/current", b"2")  # the alias moves on
    stocked.delete_blob(f"{PREFIX}/house/model.zip")  # deleted
    check_problem(app.predict("lily"), 404)
    assert app.label("iris") == "iris" and app.label("tiers") == "tier-1"
    assert app.repository.resolve("house")[1] is house  # until the next listing
    clock.advance()
    app.label("iris")  # finds the listing and its check due: both run in the background
    app.repository.wait()
    assert app.label("lily") == "lily"
    assert app.label("iris") == "iris-2"
    assert app.label("tiers") == "tier-2"
    check_problem(app.predict("house", body=HOUSE), 404)
    assert app.label("tiers", "1") == "tier-1"  # the old version is still served by version
    states = app.states()
    assert set(states) == {"iris", "lily", "tiers"} and states["iris"] == "ready"


def test_a_missing_container_is_a_clear_503(azurite: Azurite) -> None:
    repository = ModelRepository(
        "blob://no-such-container/", connection=azurite.connection_string, clock=Clock()
    )
    app = ModelsApp(repository)
    check_problem(app.predict("iris"), 503)
    status, health = app.health()
    assert status == 503
    assert "container 'no-such-container' does not exist" in health["repository"]["last_error"]
