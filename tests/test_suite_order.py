"""The suite's own scheduling (tests/conftest.py): under pytest-xdist each
worker collects the longest files first, since the scheduler hands files
out in the order the workers collected them; a run without xdist keeps
file order."""
from __future__ import annotations

from types import SimpleNamespace

from . import conftest

IDS = [
    "tests/browser/test_a.py::test_x",
    "tests/test_api_fuzz.py::test_x",
    "tests/test_b.py::test_one",
    "tests/test_page_fuzz.py::test_x[anonymous]",
    "tests/test_page_fuzz.py::test_x[admin]",
    "tests/test_page_fuzz.py::test_x[loner]",
    "tests/test_b.py::test_two",
]


def _collected(config) -> list[str]:
    items = [SimpleNamespace(nodeid=nodeid, obj=None, add_marker=lambda marker: None) for nodeid in IDS]
    conftest.pytest_collection_modifyitems(config, items)
    return [item.nodeid for item in items]


def test_an_xdist_worker_collects_the_longest_files_first():
    # What a worker's config says: xdist sets ``dist`` to "no" there.
    worker = SimpleNamespace(getoption=lambda name, default=None: "no", workerinput={"workerid": "gw0"})
    assert _collected(worker) == [
        "tests/test_page_fuzz.py::test_x[anonymous]",
        "tests/test_page_fuzz.py::test_x[admin]",
        "tests/test_api_fuzz.py::test_x",
        "tests/test_page_fuzz.py::test_x[loner]",
        "tests/browser/test_a.py::test_x",
        "tests/test_b.py::test_one",
        "tests/test_b.py::test_two",
    ]


def test_a_run_without_xdist_keeps_file_order():
    plain = SimpleNamespace(getoption=lambda name, default=None: "no")
    assert _collected(plain) == IDS
