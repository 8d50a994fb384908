"""A model repository in a local folder, served by ``serve_models`` on a real FunctionApp.

Real components throughout: model archives written by servefn, a folder on disk, the
``azure.functions`` request and response objects, the functions as the worker calls them. The
clock of the listing and of the models' checks is injected, so "the next check" is a step of a
test; the checks themselves run as they do in production (in a background thread, waited for).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from servefn.repository import ModelRepository
from servefn.repository._cache import MODEL_OVERHEAD, model_memory
from support.problems import check_problem, strict_json
from support.reliability import Clock
from support.repositories import (
    HOUSE,
    CountingStore,
    ModelsApp,
    big_iris_model,
    iris_model,
    price_model,
    put,
)

SIZE = model_memory(iris_model("A"))
"""What one small iris model is accounted for (they differ by a few bytes at most)."""


def repository(root: Path, clock: Clock | None = None, **options: object) -> ModelRepository:
    return ModelRepository(root, clock=clock or Clock(), **options)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """iris (one model.zip), house (another schema), and tiers with two versions and an alias."""
    put(tmp_path, "iris/model.zip", iris_model("iris"))
    put(tmp_path, "house/model.zip", price_model(2.0))
    put(tmp_path, "tiers/1/model.zip", iris_model("tier-1"))
    put(tmp_path, "tiers/2/model.zip", iris_model("tier-2"))
    put(tmp_path, "tiers/10/model.zip", iris_model("tier-10"))
    (tmp_path / "tiers" / "current").write_text("2\n")
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "Bad Name").mkdir()
    put(tmp_path, "Bad Name/model.zip", iris_model("bad"))
    return tmp_path


def test_two_models_answer_each_with_its_own_schema(root: Path) -> None:
    app = ModelsApp(repository(root))
    assert app.label("iris") == "iris"
    house = app.predict("house", body=HOUSE)
    assert house.status_code == 200, house.get_body()
    assert strict_json(house.get_body()) == {"Score": 2.0 * 100 + 3}
    wrong = app.predict("house")  # an iris flower sent to the house model
    problem = check_problem(wrong, 422)
    assert {"Area", "Rooms"} <= {e["loc"][0] for e in problem["errors"]}
    assert app.repository.names() == ["house", "iris", "tiers"]  # "Bad Name" is not a name


def test_versions_and_the_alias(root: Path) -> None:
    app = ModelsApp(repository(root))
    assert app.repository.versions("tiers") == ["1", "2", "10"]  # natural order
    assert app.label("tiers") == "tier-2"  # what tiers/current says
    assert app.label("tiers", "10") == "tier-10"
    assert app.repository.versions("iris") == []
    (root / "tiers" / "current").unlink()
    app.repository.refresh()
    assert app.label("tiers") == "tier-10"  # no alias, no model.zip: the highest version


def test_unknown_models_and_versions_are_404_problems_that_echo_nothing(root: Path) -> None:
    app = ModelsApp(repository(root))
    for name, version in [("c4n4ry-8d1f0e", None), ("tiers", "c4n4ry-8d1f0e"), ("..", None)]:
        problem = check_problem(app.predict(name, version), 404)
        assert "GET health" in problem["detail"]
    check_problem(app.predict("iris", "1"), 404)  # iris has no versions


def test_a_broken_alias_is_a_problem_of_that_model_only(root: Path) -> None:
    (root / "tiers" / "current").write_text("7")
    app = ModelsApp(repository(root))
    problem = check_problem(app.predict("tiers"), 404)
    assert "names version '7'" in problem["detail"]
    assert app.label("tiers", "1") == "tier-1" and app.label("iris") == "iris"
    (root / "tiers" / "current").write_bytes(b"x" * 1000)
    app.repository.refresh()
    assert "over 256 bytes" in check_problem(app.predict("tiers"), 404)["detail"]


def test_models_load_lazily_and_health_lists_their_states(root: Path) -> None:
    app = ModelsApp(repository(root))
    status, health = app.health()
    assert status == 200 and health["status"] == "ok" and health["loaded"] == 0
    assert app.states() == {"house": "idle", "iris": "idle", "tiers": "idle"}
    app.label("tiers")
    status, health = app.health()
    tiers = next(m for m in health["models"] if m["name"] == "tiers")
    assert tiers["state"] == "ready" and tiers["serves"] == "2" and tiers["current"] == "2"
    size = model_memory(iris_model("tier-2"))
    assert tiers["loaded_versions"] == ["2"] and tiers["memory"] == size
    assert health["memory_used"] == size and health["memory_budget"] == 512 * 1024**2


def test_a_model_that_cannot_load_disturbs_no_other(root: Path) -> None:
    put(root, "broken/model.zip", b"not a zip archive")
    app = ModelsApp(repository(root))
    assert app.label("iris") == "iris"
    problem = check_problem(app.predict("broken"), 500)
    assert problem["cause"] == "artifact"
    assert app.label("iris") == "iris" and app.label("tiers") == "tier-2"
    states = app.states()
    assert states["broken"] == "unusable" and states["iris"] == "ready"
    used = model_memory(iris_model("iris")) + model_memory(iris_model("tier-2"))
    assert app.health()[1]["memory_used"] == used  # the refused model holds nothing


def test_the_lru_evicts_the_least_recently_used_beyond_the_count(root: Path) -> None:
    app = ModelsApp(repository(root, max_models=2))
    app.label("iris")
    app.label("tiers", "1")
    app.label("iris")  # iris is now the most recently used
    app.label("tiers", "2")  # a third model: tiers/1 goes
    cache = app.repository.cache
    assert [e.path for e in cache.entries() if e.size] == ["iris/model.zip", "tiers/2/model.zip"]
    assert cache.evictions == 1
    app.label("tiers", "1")  # loaded again; now iris is the least recently used
    assert [e.path for e in cache.entries() if e.size] == ["tiers/2/model.zip", "tiers/1/model.zip"]


def test_the_lru_evicts_to_stay_within_the_memory_budget(root: Path) -> None:
    app = ModelsApp(repository(root, memory_budget=int(2.5 * SIZE)))
    for version in ("1", "2", "10", "1"):
        app.label("tiers", version)
    cache = app.repository.cache
    loaded = [e.path for e in cache.entries() if e.size]
    assert loaded == ["tiers/10/model.zip", "tiers/1/model.zip"] and cache.evictions == 2
    assert cache.info()["memory_used"] <= cache.budget


def test_a_model_larger_than_the_whole_budget_is_refused_clearly(root: Path) -> None:
    put(root, "huge/model.zip", big_iris_model(4000))
    budget = 4 * SIZE
    assert model_memory(big_iris_model(4000)) > budget > 2 * SIZE
    app = ModelsApp(repository(root, memory_budget=budget))
    assert app.label("iris") == "iris" and app.label("tiers") == "tier-2"
    problem = check_problem(app.predict("huge"), 500)
    assert problem["cause"] == "over-budget"
    assert "over the repository's whole memory budget" in problem["detail"]
    assert "memory_budget=" in problem["detail"]  # says what to do
    assert app.states()["huge"] == "unusable"
    cache = app.repository.cache
    assert cache.evictions == 0 and cache.info()["loaded"] == 2  # nothing evicted for it
    assert app.label("iris") == "iris"


def test_concurrent_first_requests_load_once(root: Path) -> None:
    store = CountingStore(root, delay=0.2)
    app = ModelsApp(ModelRepository(store, clock=Clock()))
    barrier = threading.Barrier(8)
    labels: list[str] = []

    def ask() -> None:
        barrier.wait()
        labels.append(app.label("tiers"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert labels == ["tier-2"] * 8
    assert store.fetches == {str(root / "tiers" / "2" / "model.zip"): 1}
    assert app.repository.catalog.listings == 1  # one listing too


def test_added_updated_and_deleted_models_are_picked_up_at_the_next_check(root: Path) -> None:
    clock = Clock()
    app = ModelsApp(repository(root, clock, refresh_after=60, list_after=60))
    assert app.label("iris") == "iris" and app.label("tiers", "1") == "tier-1"
    house = app.repository.resolve("house")[1]
    put(root, "lily/model.zip", iris_model("lily"))  # added
    put(root, "iris/model.zip", iris_model("iris-2", serial=1))  # updated
    for leaf in ("1/model.zip", "2/model.zip", "10/model.zip", "current"):
        (root / "tiers" / leaf).unlink()  # deleted
    check_problem(app.predict("lily"), 404)  # not before the next listing
    assert app.label("iris") == "iris" and app.label("tiers", "1") == "tier-1"
    clock.advance()
    app.label("iris")  # finds the checks due: they run in the background
    app.repository.wait()
    assert app.label("lily") == "lily"
    assert app.label("iris") == "iris-2"
    check_problem(app.predict("tiers", "1"), 404)
    assert app.repository.names() == ["house", "iris", "lily"]
    assert app.repository.resolve("house")[1] is house  # untouched
    assert "tiers/1/model.zip" not in [e.path for e in app.repository.cache.entries()]


def test_the_budget_comes_from_the_app_setting(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVEFN_MEMORY_BUDGET", "3MiB")
    assert repository(root).cache.budget == 3 * 1024**2
    assert repository(root, memory_budget="2GB").cache.budget == 2 * 10**9
    monkeypatch.setenv("SERVEFN_MEMORY_BUDGET", "lots")
    with pytest.raises(Exception, match="SERVEFN_MEMORY_BUDGET='lots' is not a size"):
        repository(root)
    assert MODEL_OVERHEAD < SIZE


def test_an_unreadable_repository_is_503_until_it_can_be_listed(tmp_path: Path) -> None:
    clock = Clock()
    app = ModelsApp(repository(tmp_path / "not-yet", clock))
    answer = app.predict("iris")
    assert "could not be listed yet" in check_problem(answer, 503)["detail"]
    assert int(answer.headers["Retry-After"]) >= 1
    assert app.health()[0] == 503
    put(tmp_path / "not-yet", "iris/model.zip", iris_model("iris"))
    clock.advance()
    assert app.label("iris") == "iris"
