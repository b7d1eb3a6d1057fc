"""The suite's module order (tests/scheduling.py): longest first, a module kept whole."""

from __future__ import annotations

from tests.scheduling import longest_first


def test_modules_run_longest_first_whole_and_an_unknown_one_at_the_median():
    nodeids = ["a.py::t1", "b.py::t1", "a.py::t2", "c.py::t1", "d.py::t1", "b.py::t2",
               "e.py::t1"]
    seconds = {"a.py": 5.0, "b.py": 40.0, "c.py": 1.0, "e.py": 5.0}  # median 5.0; d unknown
    assert longest_first(nodeids, seconds) == [
        "b.py::t1", "b.py::t2",  # 40 s
        "a.py::t1", "a.py::t2",  # 5 s, collected before d and e
        "d.py::t1",              # unknown: the median, 5 s, collected before e
        "e.py::t1",              # 5 s
        "c.py::t1",              # 1 s
    ]


def test_without_a_record_modules_keep_the_order_they_were_first_collected_in():
    nodeids = ["b.py::t1", "a.py::t1", "b.py::t2"]
    assert longest_first(nodeids, {}) == ["b.py::t1", "b.py::t2", "a.py::t1"]
