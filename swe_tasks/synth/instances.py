"""An accepted candidate as an SWE-bench-format instance, with its problem statement.

The instance's `base_commit` is the BUGGY tree, a commit of the local repository whose
parent is the clean release (`environment_setup_commit`, so every instance of one source
shares one environment image); `patch` is the reverse of the bug; `test_patch` is empty
(the tests are already in the repository); FAIL_TO_PASS / PASS_TO_PASS are pytest node ids;
`install_config` is the environment setup's (so the episode's image is the one judged in).

The problem statement is written from the failing tests (their names and assertion
messages) by `template_statement`, or by an `IssueWriter` (a model) when one is given.
"""

from __future__ import annotations

import re
from typing import Protocol

from swe_tasks.instance import SWEInstance
from swe_tasks.synth.candidates import Candidate
from swe_tasks.synth.evaluate import Verdict
from swe_tasks.synth.source import SourceRepo, buggy_commit

MAX_TESTS_SHOWN = 4


class IssueWriter(Protocol):
    """Writes an issue for a bug from what the tests show; None falls back to the template."""

    def write(self, candidate: Candidate, failing: dict[str, str]) -> str | None: ...


def _short(message: str) -> str:
    lines = [ln.rstrip() for ln in message.strip().splitlines() if ln.strip()]
    text = " / ".join(lines[:3])
    return text[:300] + ("..." if len(text) > 300 else "")


def template_statement(package: str, failing: dict[str, str]) -> str:
    """An issue in the voice of a user whose test suite broke. It names the failing tests
    and what they reported; it never names the function or the line changed."""
    ids = sorted(failing)
    modules = sorted({t.split("::", 1)[0] for t in ids})
    many = len(ids) != 1
    where = ", ".join(f"`{m}`" for m in modules)
    lines = [(f"Some of `{package}`'s own tests fail on the current code. {len(ids)} "
              f"test{'s' if many else ''} in {where} {'do' if many else 'does'} not pass:"), ""]
    for tid in ids[:MAX_TESTS_SHOWN]:
        msg = _short(failing[tid])
        lines.append(f"- `{tid}`" + (f": `{msg}`" if msg else ""))
    if len(ids) > MAX_TESTS_SHOWN:
        lines.append(f"- ... and {len(ids) - MAX_TESTS_SHOWN} more")
    lines += ["", ("These tests describe the intended behaviour and should pass. Please find "
                   "the cause in the library code and fix it; the tests themselves are correct.")]
    return "\n".join(lines)


def instance_id(src: SourceRepo, candidate: Candidate) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", src.name).strip("-") or "repo"
    return f"{name}__synth-{candidate.key[:12]}"


def build_instance(src: SourceRepo, candidate: Candidate, verdict: Verdict,
                   writer: IssueWriter | None = None, *,
                   install_config: dict | None = None) -> SWEInstance:
    """The instance of an accepted candidate; makes its buggy commit in the repository."""
    iid = instance_id(src, candidate)
    base = buggy_commit(src, candidate.patch, f"synthetic bug {iid}", candidate.key[:16])
    statement = writer.write(candidate, verdict.messages) if writer else None
    return SWEInstance(
        instance_id=iid, repo=src.repo, base_commit=base, patch=candidate.fix, test_patch="",
        problem_statement=statement or template_statement(src.name, verdict.messages),
        version=f"{src.name}-{src.version}", environment_setup_commit=src.commit,
        FAIL_TO_PASS=verdict.fail_to_pass, PASS_TO_PASS=verdict.pass_to_pass,
        created_at="", install_config=install_config, extras={"synthesis": {
            "strategy": candidate.strategy, "file": candidate.path,
            "function": candidate.function, "mutation": candidate.description,
            "key": candidate.key, "clean_commit": src.commit}},
    )
