"""Probes run by test_ci_data.py in a child pytest (not collected on their own): each
needs project data that the child's ENVFARM_DATA does not have."""

from __future__ import annotations

import pytest

from tests.conftest import DATA, require_data


def test_require_data():
    require_data("swebench")


@pytest.mark.needs_data("terminal-bench", "tb1")
def test_needs_data_marker():
    pass


@pytest.mark.skipif(not (DATA / "swebench").is_dir(), reason=f"no data at {DATA}")
def test_plain_skipif_on_the_data_folder():
    pass


@pytest.mark.skipif(True, reason="an unrelated platform skip")
def test_unrelated_skip_stays_a_skip():
    pass
