"""A dataset's own eval script: when it grades an instance, and how its output is framed.

When (`log_eval_for`): an instance with an `eval_script` (SWE-bench v5) is graded by
running that bash script in /testbed and reading its output with its `log_parser` (else
the parser SWE-bench uses for the repo). A SWE-rebench `install_config` with a
`log_parser` whose `test_cmd` does not run pytest itself (`runs_pytest`) is graded by a
script of that command. Everything else is graded from pytest's JUnit report
(`swe_tasks.testrun`). An instance is checked at import against this same rule.

SWE-bench's scripts reset the test files to base_commit (`git checkout <sha> <files>`),
apply test_patch themselves (a heredoc), run the tests between `: '>>>>> Start Test
Output'` and `: '>>>>> End Test Output'`, then reset the test files again. Here /testbed
holds base_commit's tree as one fresh commit with another sha, so the script's base_commit
is rewritten to HEAD, and its informational `git show` (which would print that root
commit's whole tree) shows the header only. A script that applies the test patch itself
(`applies_test_patch`) is the only one that applies it: the patch is never applied twice.

Framing (`Frame`). The output is free-form text that the code under test prints into, so:
- Three random tokens, new each run: start, end and seal. The wrapper reads them from a
  key file into shell variables (never exported) and deletes it before anything else
  runs, so no file, command line or environment holds them until they are printed. The
  wrapper is one `{ ... }` group that bash parses whole before running it: rewriting its
  (deleted, still open) file from inside the run changes nothing it executes.
- The dataset's marker lines become a start marker, printed just before the tests (code
  that ran earlier, such as an install step, never saw it), and an end marker carrying the
  test command's exit code, printed once the tests finished. Only what lies between the
  start marker and the first end marker after it is parsed; SWE-bench's marker strings
  and `Test Exit Code` lines, printed by anyone, mean nothing here.
- The script's output goes into a pipe, never a file it holds (it cannot seek or truncate
  it), to `tee` (the log file, read back whole: the command's own output stream is capped
  by the sandbox) and `sha256sum`. The wrapper prints that digest after the seal token into
  the command's output stream, which leaves the container; a log file whose digest differs
  (rewritten, truncated or appended to outside the pipe) gives no verdict.
- Before the digest is taken the wrapper kills what the run left running: each process
  started after it, in its session or carrying its `__EF_RUN` tag, so nothing the run
  started writes into the log afterwards (unless it escaped, below).
- Grading (`grading.grade_log`) needs the runner's closing summary last in the frame,
  keeps a test's worst status, and rejects a log that reports no failure from a runner
  that exited non-zero.
- A wrapper that cannot read its key exits `KEY_UNREADABLE` before any of the script runs,
  with no seal in its output: the sandbox failed (`testrun` raises SandboxError).
A script without markers runs whole, in a subshell, inside the frame.

Under the farm's threat model (the agent is root in its own sandbox and adversarial) the
script runs in the verifier's fresh sandbox, never the agent's, with only the agent's
filtered patch applied (`swe_tasks.workspace`, `swe_tasks.integrity`): its test files,
conftest files and pytest configuration are the task's, and a `setup.py` that gains
install-time code or a changed build backend is `tampered` before the script runs. The
script itself runs as root (its install steps need it), so the code under test is root
there too; that is why everything below stays possible for it, and why
`swe_tasks.patch_scan` reads the change first. The JUnit path runs pytest unprivileged
(`swe_tasks.testrun`); running an eval script's test section as that user is the next
step (its install lines must stay root).

What stays spoofable, because a log cannot say who wrote a line:
- Code in the test command writes into the runner's pipe: it can print well-formed result
  lines and a closing summary for tests the runner does not report itself, or take over
  the pipe (dup2 onto fd 1, or read its other end through /proc) to hide the runner's own
  lines, then exit 0. It can read the log file as it grows, start token included.
- A process that leaves both the session and the tag (setsid and a cleared environment)
  escapes the reaper: it can hold the pipe open (the run then times out), rewrite the log
  (no verdict), or race the sandbox for the bytes of the wrapper's output stream (read
  through /proc) to take the sealed digest and print its own for a rewritten log.
- A process allowed to ptrace the wrapper (same uid, no Yama policy) reads the tokens.
- The sandbox shell's end-of-command marker is readable inside the container, so a
  command's exit code proves nothing here: a verdict needs the sealed digest.
JUnit grading never reads stdout.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from swe_tasks.grading import PASS_AND_FAIL
from swe_tasks.log_parsers import canonical_name, parser_for_repo

if TYPE_CHECKING:  # instance.py validates instances by `log_eval_for`
    from swe_tasks.instance import SWEInstance

_START = re.compile(r"""^(?::|echo) (['"]?)>>>>> Start Test Output\1\s*$""")
_END = re.compile(r"""^(?::|echo) (['"]?)>>>>> End Test Output\1\s*$""")
_SAVED_RC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=\$\?\s*$")  # `SWEBENCH_TEST_EXIT_CODE=$?`
_SHA = re.compile(r"^[0-9a-f]{40}$")
_DIFF_HEADER = re.compile(r"^diff --git .+$", re.MULTILINE)
_PLUS_HEADER = re.compile(r"^\+\+\+ .+$", re.MULTILINE)
_GIT_SHOW = re.compile(r"^git show[ \t]*$", re.MULTILINE)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"^python[0-9.]*$")
# Marker commands run with stderr to /dev/null, so `set -x` does not trace the tokens.
_PRINT_BEGIN = """{ printf '\\n%s\\n' "$__ef_begin"; } 2>/dev/null"""
_PRINT_END = """{{ __ef_rc={rc}; printf '\\n%s %s\\n' "$__ef_end" "$__ef_rc"; }} 2>/dev/null"""
KEY_UNREADABLE = 97
"""The wrapper's exit code when it cannot read its key: nothing of the script ran."""
# Kills what the run left running: each process started after the wrapper ($$), in its
# session or tagged with it, but the wrapper, this pipeline (children of this subshell's
# parent) and that parent. SIGSTOP first, so nothing forks while it kills; rounds until
# none is left. Builtins only, stat fields as in sandbox.shell's killer.
_REAPER = r"""__ef_reap() {
  local me=$BASHPID sid t0 pp line rest d p kv tagged round victims
  read -r line < /proc/$$/stat; rest=${line##*) }; set -- $rest; sid=$4; t0=${20}
  read -r line < /proc/$me/stat; rest=${line##*) }; set -- $rest; pp=$2
  for round in 1 2 3 4 5 6 7 8 9 10; do
    victims=()
    for d in /proc/[0-9]*; do
      p=${d#/proc/}
      [ "$p" = "$me" ] || [ "$p" = "$$" ] || [ "$p" = "$pp" ] && continue
      read -r line < "$d/stat" 2>/dev/null || continue
      rest=${line##*) }; set -- $rest
      [ "$1" = Z ] || [ "$2" = "$pp" ] || [ "${20}" -lt "$t0" ] && continue
      if [ "$4" != "$sid" ]; then
        tagged=
        while IFS= read -r -d '' kv; do
          [ "$kv" = "__EF_RUN=$$" ] && { tagged=1; break; }
        done 2>/dev/null < "$d/environ"
        [ -n "$tagged" ] || continue
      fi
      victims+=("$p")
    done
    [ ${#victims[@]} -eq 0 ] && return 0
    kill -STOP "${victims[@]}" 2>/dev/null; kill -KILL "${victims[@]}" 2>/dev/null
  done
}"""


@dataclass(frozen=True)
class LogEval:
    """How an instance is graded from its own script's log."""

    script: str
    """Bash run in /testbed (base_commit already read as HEAD)."""
    parser: str
    """Canonical name of the log parser (`swe_tasks.log_parsers.PARSERS`)."""
    eval_type: str
    """`pass_and_fail` or `fail_only` (see `swe_tasks.grading`)."""
    applies_test_patch: bool
    """The script applies test_patch itself: nobody else may."""


def log_eval_for(instance: SWEInstance) -> LogEval | None:
    """The log grading of `instance`, or None: JUnit. Raises UnknownLogParser when the
    parser that would read its log is not known (a parser name nothing reads is not
    checked: it changes nothing)."""
    config = instance.install_config or {}
    named = instance.log_parser or config.get("log_parser")
    command = config.get("test_cmd")
    if instance.eval_script:
        script = instance.eval_script
        if _SHA.match(instance.base_commit):
            script = script.replace(instance.base_commit, "HEAD")
        script = _GIT_SHOW.sub("git show --no-patch", script)
        parser = canonical_name(str(named or parser_for_repo(instance.repo)))
    elif named and command and not runs_pytest(command):
        command = "\n".join(map(str, command)) if isinstance(command, list) else str(command)
        script = f": '>>>>> Start Test Output'\n{command}\n: '>>>>> End Test Output'\n"
        parser = canonical_name(str(named))
    else:
        return None
    return LogEval(script, parser, instance.eval_type or PASS_AND_FAIL,
                   _carries(script, instance.test_patch))


def runs_pytest(test_cmd: Any) -> bool:
    """Whether every command of a SWE-rebench `test_cmd` (a string, or a list of them)
    starts with pytest itself: `pytest`, `py.test` or `python… -m pytest`, after any
    `VAR=value` words (`tox -e pytest` or `run_pytest.sh` do not)."""
    lines = test_cmd if isinstance(test_cmd, list) else str(test_cmd).split("\n")
    commands = [str(line).strip() for line in lines if str(line).strip()]
    return bool(commands) and all(_starts_with_pytest(c) for c in commands)


def _starts_with_pytest(command: str) -> bool:
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: the first words still tell
        words = command.split()
    if words and words[0] == "env":
        words = words[1:]
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return False
    program = os.path.basename(words[0])
    return program in ("pytest", "py.test") or (
        bool(_PYTHON.match(program)) and words[1:3] == ["-m", "pytest"])


def _carries(script: str, patch: str) -> bool:
    """Whether `script` holds `patch` (every file header of it): it applies it itself."""
    headers = _DIFF_HEADER.findall(patch) or _PLUS_HEADER.findall(patch)
    return bool(headers) and all(h in script for h in headers)


@dataclass(frozen=True)
class Framed:
    """What the frame holds: the test output, and the test command's exit code."""

    section: str
    exit_code: int | None
    problem: str | None = None


@dataclass(frozen=True)
class Frame:
    """The random tokens of one run (see the module docstring)."""

    begin: str
    end: str
    seal: str

    @classmethod
    def new(cls) -> Frame:
        return cls(*(f"__envfarm_{name}_{secrets.token_hex(16)}__"
                     for name in ("tests_begin", "tests_end", "seal")))

    @property
    def key(self) -> str:
        """The key file's text: what the wrapper reads, then deletes."""
        return f"{self.begin}\n{self.end}\n{self.seal}\n"

    def wrap(self, script: str, key_path: str, log_path: str, *, workdir: str = "/testbed",
             env: dict[str, str] | None = None) -> str:
        """The wrapper: read the key, delete it, run `script` with its markers replaced,
        its output into `log_path`; then reap, and print the log's sealed digest."""
        lines = script.split("\n")
        start = next((i for i, line in enumerate(lines) if _START.match(line)), None)
        end = None if start is None else next(
            (i for i in range(start + 1, len(lines)) if _END.match(lines[i])), None)
        if start is not None and end is not None:
            before = [line for line in lines[start + 1:end] if line.strip()]
            saved = _SAVED_RC.match(before[-1]) if before else None
            lines[start] = _PRINT_BEGIN
            rc = "$" + saved.group(1) if saved else "$?"
            lines[end] = _PRINT_END.format(rc=rc)
            body = "\n".join(lines)
        else:
            body = f"{_PRINT_BEGIN}\n(\n{script}\n)\n{_PRINT_END.format(rc='$?')}"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in (env or {}).items())
        key, log = shlex.quote(key_path), shlex.quote(log_path)
        # One `{ ... }` group: bash parses all of it before running any, so rewriting the
        # (deleted, still open) wrapper file while it runs changes nothing it executes.
        return (
            "{\n{ IFS= read -r __ef_begin && IFS= read -r __ef_end && IFS= read -r __ef_seal"
            f"; }} 2>/dev/null < {key} || {{ echo 'envfarm: the eval wrapper cannot read its "
            f"key file'; exit {KEY_UNREADABLE}; }}\n"
            f"rm -f {key} \"$0\"\nprintf '\\n%s begun\\n' \"$__ef_seal\"\n"
            f"export __EF_RUN=$$\n{_REAPER}\n"
            f"__ef_tests() {{\ncd {shlex.quote(workdir)}\n{exports}{body}\n}}\n"
            f"__ef_sum=$( {{ ( __ef_tests ) 2>&1 < /dev/null; __ef_reap; }} | tee {log} "
            "| sha256sum )\n"
            "[[ $__ef_sum =~ ^[0-9a-f]{64}\\ \\ -$ ]] || __ef_sum=invalid\n"
            "printf '\\n%s sha256 %s\\n' \"$__ef_seal\" \"${__ef_sum%% *}\"\nexit 0\n}\n")

    def key_unread(self, exit_code: int, output: str) -> bool:
        """Whether the wrapper, per its `exit_code` and `output` stream, never read its key
        (then nothing of the script ran). Its output holds the seal once it has."""
        return exit_code == KEY_UNREADABLE and self.seal not in output

    def check(self, output: str, log: bytes) -> str | None:
        """Why `log`, read back from its file, is not what the wrapper sealed in its
        `output` stream; None when it is."""
        sealed = re.findall(rf"^{self.seal} sha256 (\S+)$", output, re.MULTILINE)
        if len(sealed) != 1:
            return ("the eval script's wrapper did not finish (no sealed digest of its log "
                    "in its output): it was killed, or ran out of time")
        if sealed[0] != hashlib.sha256(log).hexdigest():
            return ("the test log differs from what the test run wrote into its pipe (its "
                    "digest is not the sealed one): something rewrote the file")
        return None

    def cut(self, log: str) -> Framed:
        """The framed section of `log`, or the problem that leaves no verdict."""
        lines = log.split("\n")
        try:
            start = lines.index(self.begin)
        except ValueError:
            return Framed("", None, "the eval script never reached its tests (no start "
                          "marker in its output)")
        prefix = self.end + " "
        for i in range(start + 1, len(lines)):
            line = lines[i]
            if line.startswith(prefix) and re.fullmatch(r"-?\d+", line[len(prefix):]):
                return Framed("\n".join(lines[start + 1:i]), int(line[len(prefix):]))
        return Framed("\n".join(lines[start + 1:]), None,
                      "the test runner's exit marker is missing: the eval script stopped "
                      "inside its tests")

