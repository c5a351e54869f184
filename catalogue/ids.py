"""Task ids and the names derived from them: checked once, at import, for every database.

A task id is typed by users, stored in `VARCHAR(255)` columns (catalogue and trajectory
store, SQLite and PostgreSQL alike), put in container labels and, through
`safe_image_name`, in image names. So an id is checked where it enters the catalogue:

- 1 to `MAX_ID_LENGTH` (255) characters, which is what PostgreSQL's `VARCHAR(255)` takes
  (SQLite would take more and so hid the limit until a cluster run crashed on it);
- printable: no control characters (PostgreSQL refuses NUL; newlines and tabs break tables,
  logs and labels), no leading or trailing whitespace;
- no backslash, no leading `/`, no `.` or `..` segment: ids name folders in exports and
  artifacts, and must never climb out of one.

Letters of any script, digits, spaces inside, and punctuation such as `/ _ - . : @ +` are
fine: datasets name their tasks after their folders.

`safe_image_name(text)` turns any text (an id, a folder name such as `jeu de données ü`)
into a valid Docker/OCI repository name component: a lowercase slug, plus a short hash
of the original whenever the slug had to change it, so two different texts never share
a name and the result is always buildable.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_ID_LENGTH = 255
"""Longest task id, in characters: the `VARCHAR(255)` of the tasks and episodes tables."""

MAX_IMAGE_COMPONENT = 128
"""Longest name `safe_image_name` returns (Docker allows 255 for the whole reference)."""

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
"""One path component of an OCI repository name (the distribution spec's grammar)."""


class InvalidTaskId(ValueError):
    """A task id that some supported database, label or path would not take. The message
    names the id and what to change."""


def id_problem(task_id: object) -> str | None:
    """Why `task_id` is not a valid task id, or None when it is."""
    if not isinstance(task_id, str):
        return f"a task id must be text, not {type(task_id).__name__}"
    if not task_id:
        return "a task id must not be empty"
    if len(task_id) > MAX_ID_LENGTH:
        return (f"is {len(task_id)} characters long; at most {MAX_ID_LENGTH} fit the catalogue "
                "(PostgreSQL VARCHAR(255))")
    bad = sorted({c for c in task_id if unicodedata.category(c)[0] == "C"})
    if bad:
        return "has control characters (" + ", ".join(repr(c) for c in bad[:5]) + ")"
    if task_id != task_id.strip():
        return "starts or ends with whitespace"
    if "\\" in task_id:
        return "has a backslash"
    if task_id.startswith("/"):
        return "starts with '/'"
    if any(part in (".", "..") for part in task_id.split("/")):
        return "has a '.' or '..' segment"
    return None


def validate_task_id(task_id: object) -> str:
    """`task_id` itself when valid; raises InvalidTaskId with the reason and the fix."""
    problem = id_problem(task_id)
    if problem is not None:
        shown = repr(task_id) if not isinstance(task_id, str) or len(task_id) <= 80 \
            else repr(task_id[:60] + "…")
        raise InvalidTaskId(f"task id {shown} {problem}; rename the task (its folder or its "
                            "id field) so the id is printable and at most "
                            f"{MAX_ID_LENGTH} characters")
    return task_id  # type: ignore[return-value]


def is_valid_image_component(name: str) -> bool:
    """Whether `name` is one valid component of a Docker/OCI repository name."""
    return len(name) <= MAX_IMAGE_COMPONENT and _COMPONENT.fullmatch(name) is not None


def safe_image_name(text: str, *, max_length: int = MAX_IMAGE_COMPONENT) -> str:
    """A valid image repository name component for `text`, deterministic and collision-safe.

    Returns `text` unchanged when it already is one (so existing names stay); otherwise a
    lowercase ASCII slug of it (accents folded: `données ü` → `donnees-u`) joined to the
    first 10 hex digits of its SHA-256, cut so the whole fits `max_length` (at least 16).
    Slashes become dashes: the result is one component; add your own prefix with `/`.
    """
    if max_length < 16:
        raise ValueError("max_length must be at least 16")
    if len(text) <= max_length and _COMPONENT.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")
    slug = slug[: max_length - len(digest) - 1].rstrip("-")
    return f"{slug}-{digest}" if slug else f"x{digest}"
