"""Tools an agent calls inside an episode: the contract and the shared code-agent tools.

A tool is a small object with a name, a description and a JSON schema of its
arguments. It is called with already-decoded arguments and the env, and returns a
`ToolResult`. Bad arguments raise `ToolArgumentError`: the env turns that into an
error observation and the episode goes on (what the agent causes is never an
exception that ends the episode). A `SandboxError` raised from inside a tool is an
infrastructure failure and ends the episode with status `infra_error`.

Shared tools: `BashTool`, `FinishTool`, `StrReplaceEditorTool` (used by the SWE,
terminal and web-dev envs).
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from envs.core import ToolEnv


class ToolArgumentError(ValueError):
    """The agent called a tool with arguments it cannot run with; the message goes back to it."""


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced: the observation text, and whether the agent is done."""

    output: str
    finished: bool = False


class Tool(ABC):
    """One tool the agent can call. Subclasses set `name`, `description`, `parameters`."""

    name: str = ""
    description: str = ""
    parameters: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}, "required": []}
    quota: ClassVar[str | None] = None
    """Name of the quota held while this tool runs (`envs.quotas`); None: unlimited."""

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling schema of this tool (a fresh dict every call)."""
        import copy

        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": copy.deepcopy(self.parameters),
            },
        }

    @abstractmethod
    def __call__(self, arguments: dict[str, Any], env: ToolEnv) -> ToolResult:
        """Run the tool. Raises `ToolArgumentError` for bad arguments."""

    def check_arguments(self, arguments: dict[str, Any]) -> None:
        """Reject missing required arguments, unknown ones and wrong basic types."""
        props: dict[str, Any] = self.parameters.get("properties", {})
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        if missing:
            raise ToolArgumentError(
                f"{self.name}: missing required argument(s) {', '.join(missing)}; "
                f"expected {sorted(props)}"
            )
        unknown = [k for k in arguments if k not in props]
        if unknown:
            raise ToolArgumentError(
                f"{self.name}: unknown argument(s) {', '.join(unknown)}; expected {sorted(props)}"
            )
        for key, value in arguments.items():
            expected = props[key].get("type")
            if expected and value is not None and not _type_ok(value, expected):
                raise ToolArgumentError(
                    f"{self.name}: argument {key!r} must be of type {expected}, "
                    f"got {type(value).__name__}"
                )
            enum = props[key].get("enum")
            if enum and value not in enum:
                raise ToolArgumentError(f"{self.name}: argument {key!r} must be one of {enum}")


def _type_ok(value: Any, expected: str | list[str]) -> bool:
    kinds = [expected] if isinstance(expected, str) else expected
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    return any(checks.get(k, lambda v: True)(value) for k in kinds)


def _coerce_int(value: Any, name: str) -> int:
    """Models often send numbers as strings ("12"); accept those, reject the rest."""
    if isinstance(value, bool):
        raise ToolArgumentError(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ToolArgumentError(f"{name} must be an integer, got {value!r}")


class BashTool(Tool):
    """Run a command in the episode's persistent shell (cwd and env persist)."""

    name = "bash"
    description = (
        "Run a bash command in the sandbox. The shell is persistent: cwd and exported "
        "variables carry over between calls. Commands get no stdin; stderr is merged into "
        "stdout. Long outputs are truncated in the middle."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The bash command to run."},
            "timeout": {
                "type": ["integer", "number", "string"],
                "description": "Seconds before the command is killed (default 120).",
            },
        },
        "required": ["command"],
    }

    def __init__(self, default_timeout_s: float = 120.0, max_timeout_s: float = 1800.0) -> None:
        self.default_timeout_s = default_timeout_s
        self.max_timeout_s = max_timeout_s

    def __call__(self, arguments: dict[str, Any], env: ToolEnv) -> ToolResult:
        self.check_arguments(arguments)
        command = arguments["command"]
        if not command.strip():
            raise ToolArgumentError("bash: command is empty")
        timeout = arguments.get("timeout")
        try:
            timeout_s = float(timeout) if timeout is not None else self.default_timeout_s
        except (TypeError, ValueError):
            raise ToolArgumentError(f"bash: timeout must be a number, got {timeout!r}") from None
        if timeout_s <= 0:
            raise ToolArgumentError("bash: timeout must be positive")
        timeout_s = max(1.0, min(timeout_s, self.max_timeout_s, env.remaining_time_s()))
        result = env.sandbox.exec(command, timeout_s=timeout_s)
        text = result.output
        if result.timed_out:
            text += f"\n[command timed out after {timeout_s:g} s and was killed]"
        if result.shell_restarted:
            text += "\n[the shell was restarted: cwd and environment are back to their start]"
        return ToolResult(f"{text}\n[exit code: {result.exit_code}]" if text else
                          f"[exit code: {result.exit_code}]")


class FinishTool(Tool):
    """End the episode. An optional `answer` is kept in `env.final_answer` for verifiers."""

    name = "finish"
    description = "Call this when the task is done (or cannot be done). Ends the episode."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "description": "Final answer or summary, if any."},
        },
        "required": [],
    }

    def __call__(self, arguments: dict[str, Any], env: ToolEnv) -> ToolResult:
        self.check_arguments(arguments)
        answer = arguments.get("answer")
        env.final_answer = None if answer is None else str(answer)
        return ToolResult("Finished.", finished=True)


class StrReplaceEditorTool(Tool):
    """View, create and edit files in the sandbox; one undo level per edit, per path.

    Edits go through `env.sandbox.read_file` / `write_file`, so no shell quoting is
    involved. `str_replace` requires `old_str` to occur exactly once: an ambiguous edit
    is refused with the line numbers of every match, so the agent can add context.
    """

    name = "str_replace"
    description = (
        "File editor. Commands: view (file with line numbers, or a directory listing), "
        "create (a new file), str_replace (replace old_str, which must occur exactly once, "
        "with new_str), insert (new_str after line insert_line; 0 = at the top), "
        "undo_edit (revert the last edit of path). Paths are absolute."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "command": {
                "type": "string",
                "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
            },
            "path": {"type": "string", "description": "Absolute path of a file or directory."},
            "file_text": {"type": "string", "description": "create: the file's content."},
            "old_str": {"type": "string", "description": "str_replace: the text to replace."},
            "new_str": {"type": "string", "description": "str_replace/insert: the new text."},
            "insert_line": {"type": ["integer", "string"], "description": "insert: line number."},
            "view_range": {"type": "array", "description": "view: [start, end] (1-based, -1 = end)."},
        },
        "required": ["command", "path"],
    }

    def __call__(self, arguments: dict[str, Any], env: ToolEnv) -> ToolResult:
        self.check_arguments(arguments)
        path = arguments["path"]
        if not path.startswith("/"):
            raise ToolArgumentError(f"{self.name}: path must be absolute, got {path!r}")
        command = arguments["command"]
        handler = getattr(self, f"_{command}")
        return ToolResult(handler(env, path, arguments))

    # -- commands ---------------------------------------------------------------------

    def _view(self, env: ToolEnv, path: str, args: dict[str, Any]) -> str:
        probe = env.sandbox.exec(f"test -d {shlex.quote(path)} && echo DIR || echo FILE")
        if probe.output.strip().endswith("DIR"):
            listing = env.sandbox.exec(
                f"find {shlex.quote(path)} -maxdepth 2 -not -path '*/.*' | sort | head -500"
            )
            return f"Files and directories up to 2 levels deep in {path}:\n{listing.output}"
        lines = self._read(env, path).split("\n")
        start, end = 1, len(lines)
        if args.get("view_range") is not None:
            rng = args["view_range"]
            if len(rng) != 2:
                raise ToolArgumentError("view_range must be [start, end]")
            start, end = _coerce_int(rng[0], "view_range[0]"), _coerce_int(rng[1], "view_range[1]")
            end = len(lines) if end == -1 else end
            if not 1 <= start <= max(end, 1) or end > len(lines):
                raise ToolArgumentError(
                    f"view_range {rng} is outside the file, which has {len(lines)} lines"
                )
        return "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))

    def _create(self, env: ToolEnv, path: str, args: dict[str, Any]) -> str:
        if "file_text" not in args:
            raise ToolArgumentError("create needs file_text")
        if env.sandbox.exec(f"test -e {shlex.quote(path)}").exit_code == 0:
            raise ToolArgumentError(
                f"{path} already exists; use str_replace or insert to change it"
            )
        parent = path.rsplit("/", 1)[0] or "/"
        env.sandbox.exec(f"mkdir -p {shlex.quote(parent)}")
        self._history(env).setdefault(path, []).append(None)
        env.sandbox.write_file(path, args["file_text"])
        return f"File created at {path}."

    def _str_replace(self, env: ToolEnv, path: str, args: dict[str, Any]) -> str:
        old, new = args.get("old_str"), args.get("new_str") or ""
        if not old:
            raise ToolArgumentError("str_replace needs a non-empty old_str")
        text = self._read(env, path)
        count = text.count(old)
        if count == 0:
            raise ToolArgumentError(f"old_str was not found in {path}; nothing replaced")
        if count > 1:
            starts, i = [], text.find(old)
            while i != -1:
                starts.append(text.count("\n", 0, i) + 1)
                i = text.find(old, i + 1)
            raise ToolArgumentError(
                f"old_str occurs {count} times in {path} (lines {starts}); "
                "add surrounding lines so it is unique"
            )
        self._save(env, path, text)
        updated = text.replace(old, new, 1)
        env.sandbox.write_file(path, updated)
        first = text[: text.find(old)].count("\n") + 1
        return f"The file {path} has been edited.\n" + _snippet(updated, first, new.count("\n") + 1)

    def _insert(self, env: ToolEnv, path: str, args: dict[str, Any]) -> str:
        if "insert_line" not in args or "new_str" not in args:
            raise ToolArgumentError("insert needs insert_line and new_str")
        line = _coerce_int(args["insert_line"], "insert_line")
        text = self._read(env, path)
        lines = text.split("\n")
        if not 0 <= line <= len(lines):
            raise ToolArgumentError(f"insert_line {line} must be within [0, {len(lines)}]")
        self._save(env, path, text)
        new_lines = args["new_str"].split("\n")
        updated = "\n".join(lines[:line] + new_lines + lines[line:])
        env.sandbox.write_file(path, updated)
        return f"The file {path} has been edited.\n" + _snippet(updated, line + 1, len(new_lines))

    def _undo_edit(self, env: ToolEnv, path: str, args: dict[str, Any]) -> str:
        stack = self._history(env).get(path)
        if not stack:
            raise ToolArgumentError(f"no edit of {path} to undo")
        previous = stack.pop()
        if previous is None:
            env.sandbox.exec(f"rm -f {shlex.quote(path)}")
            return f"Undid the creation of {path}."
        env.sandbox.write_file(path, previous)
        return f"Last edit of {path} undone."

    # -- helpers ------------------------------------------------------------------------

    def _history(self, env: ToolEnv) -> dict[str, list[str | None]]:
        return env.tool_state.setdefault("str_replace.history", {})

    def _save(self, env: ToolEnv, path: str, text: str) -> None:
        """Keep the text for `undo_edit`, within UNDO_MAX_EDITS per file and UNDO_MAX_BYTES
        in all (oldest dropped first): the host holds no copy per edit of a big file."""
        history = self._history(env)
        stack = history.setdefault(path, [])
        stack.append(text)
        del stack[:-UNDO_MAX_EDITS]
        total = sum(len(t or "") for s in history.values() for t in s)
        for s in history.values():
            while total > UNDO_MAX_BYTES and s:
                dropped = s.pop(0)
                total -= len(dropped or "")

    @staticmethod
    def _read(env: ToolEnv, path: str) -> str:
        from sandbox.errors import FileTooLarge

        try:
            data = env.sandbox.read_file(path, max_bytes=EDITOR_MAX_BYTES)
        except FileTooLarge:
            raise ToolArgumentError(
                f"{path} is over the editor's {EDITOR_MAX_BYTES >> 20} MB limit; read or edit "
                "it with bash (head, sed -n 'A,Bp', sed -i)") from None
        except FileNotFoundError:
            raise ToolArgumentError(f"{path} does not exist") from None
        except IsADirectoryError:
            raise ToolArgumentError(f"{path} is a directory") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolArgumentError(f"{path} is not a UTF-8 text file") from None


EDITOR_MAX_BYTES = 2 << 20
"""Largest file the editor reads into the host (view, replace, insert); bigger ones are
for bash, which works inside the sandbox."""
UNDO_MAX_EDITS = 10
"""Undo steps kept per file."""
UNDO_MAX_BYTES = 8 << 20
"""Undo text kept for all files of an episode."""


def _snippet(text: str, first_line: int, n_lines: int, context: int = 4) -> str:
    lines = text.split("\n")
    lo = max(1, first_line - context)
    hi = min(len(lines), first_line + n_lines - 1 + context)
    return "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(lo, hi + 1))
