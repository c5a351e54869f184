"""Task ids are checked where they enter the catalogue; image names made from any text are
valid and distinct. Real Docker reference parsing is the judge of validity."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from catalogue import (
    MAX_ID_LENGTH,
    InvalidTaskId,
    TaskRecord,
    is_valid_image_component,
    safe_image_name,
    validate_task_id,
)

pytestmark = pytest.mark.badinput

GOOD_IDS = ["astropy__astropy-12907", "harbor/hello-file", "tb1/jeu de données ü/tâche",
            "general/search:seed=3", "x" * MAX_ID_LENGTH, "タスク/一"]
BAD_IDS = ["", "x" * (MAX_ID_LENGTH + 1), "a\x00b", "line\nbreak", "tab\there", " lead",
           "trail ", "back\\slash", "/abs", "a/../b", "./a", "a/.", "\x7f"]


@pytest.mark.parametrize("task_id", GOOD_IDS)
def test_good_ids_pass(task_id):
    assert validate_task_id(task_id) == task_id
    assert TaskRecord(id=task_id, kind="swe", source="s", data={}).id == task_id


@pytest.mark.parametrize("task_id", BAD_IDS)
def test_bad_ids_are_refused_with_the_fix(task_id):
    with pytest.raises(InvalidTaskId, match="rename the task"):
        validate_task_id(task_id)
    with pytest.raises(ValidationError):
        TaskRecord(id=task_id, kind="swe", source="s", data={})


def test_a_long_id_error_is_short():
    with pytest.raises(InvalidTaskId) as info:
        validate_task_id("y" * 10_000)
    assert len(str(info.value)) < 300 and "10000 characters" in str(info.value)


NAMES = ["jeu de données ü", "tb1/jeu de données ü", "Harbor/Task--Name", "--", "日本語",
         "a" * 500, "UPPER", ".hidden", "x_", "ok-name", "a__b", "a..b", "ü", ""]


@pytest.mark.docker
@pytest.mark.parametrize("text", NAMES)
def test_safe_image_name_is_always_a_valid_reference(text, docker_client):
    name = safe_image_name(text)
    assert is_valid_image_component(name), name
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(f"envfarm/{name}:abc")
    assert (repo, tag) == (f"envfarm/{name}", "abc")
    from docker.errors import ImageNotFound

    # The engine parses it as a name (not found), not "invalid reference format" (a 400).
    with pytest.raises(ImageNotFound):
        docker_client.images.get(f"envfarm/{name}:no-such-tag")


def test_safe_image_name_keeps_valid_names_and_separates_lossy_ones():
    assert safe_image_name("tb1-evoeval") == "tb1-evoeval"
    assert safe_image_name("jeu de données ü").startswith("jeu-de-donnees-u-")
    # Texts that slug alike still get different names (the hash of the original).
    assert safe_image_name("A B") != safe_image_name("a-b") != safe_image_name("a b")
    assert safe_image_name("x" * 500) != safe_image_name("x" * 501)
    assert len(safe_image_name("x" * 500)) <= 128 and len(safe_image_name("é" * 40, max_length=20)) <= 20
    assert safe_image_name("same") == safe_image_name("same")
