"""`GeneralEnv` (`envfarm/general-v0`): multi-hop search and stateful function calling.

Task ids say everything needed to rebuild the task, so no catalogue is required:

- `search-<world>-<question>-d<depth>-o<obfuscation>`: a question over the synthetic
  world `<world>` (`envs.general.factgraph`), answered with `finish(answer=...)`; tools
  `search`, `open`, `find`. No sandbox: the corpus is searched in-process, offline.
- `apps-<kind>-<seed>` (kind: shop, invoice, calendar): app tools whose state lives
  in SQLite inside a sandbox; the verifier checks the final state and the answer.

The reward is 1.0 when the answer matches (numbers within tolerance, names after
normalization, or the optional LLM judge says so) and, for apps, every state check
passes; else 0.0.

The app-state dump for the verifier runs after every process in the sandbox was killed,
in a fresh shell, under `env -i` with the system interpreter in isolated mode
(`python3 -I -S`: no `PYTHON*` variables, no site directories, `.pth` or
`sitecustomize`), so nothing left in the sandbox changes what the verifier reads. A
state too large for the dump's output cap is the agent's doing (agent_fault).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from typing import Any

from envs.core import ToolEnv, VerifierResult
from envs.general.answers import JudgeConfig, LLMJudge, match_answer
from envs.general.apps import (
    SERVER_PATH,
    SERVER_SOURCE,
    AppTool,
    Scenario,
    call_app,
    check_state,
    make_scenario,
)
from envs.general.factgraph import Question, World, build_world, make_question, oracle_steps
from envs.general.search import BM25Index, FindTool, OpenTool, SearchTool
from envs.integrity import stop_agent
from envs.tools import FinishTool, Tool
from sandbox.errors import AgentCaused

DUMP_COMMAND = (f"env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 /usr/bin/python3 -I -S "
                f"{SERVER_PATH} __dump__ {base64.b64encode(b'{}').decode()}")
"""The verifier's read of the app state: a clean environment, the system interpreter."""

_SEARCH_ID = re.compile(r"^search-(\d+)-(\d+)-d([1-4])-o([01])$")
_APPS_ID = re.compile(r"^apps-(shop|invoice|calendar)-(\d+)$")
DEFAULT_TASKS = ("search-1-1-d2-o0", "search-2-5-d3-o1", "search-3-2-d1-o0", "search-4-7-d2-o1")

SEARCH_PROMPT = (
    "Answer the question using the document collection: search it, open documents, and "
    "follow the facts from one document to the next. When you know the answer, call finish "
    "with answer set to just the answer (a name or a number).")
APPS_PROMPT = (
    "You operate a user's apps through the tools. Do exactly what the request asks, using the "
    "tools to look up what you need. When done, call finish with answer set to what the "
    "request asks you to report.")


ANSWER_EXCERPT_CHARS = 2000
"""What of the final answer `reward_details` keeps (the answer is the policy's own text)."""


def _excerpt(answer: str | None) -> str | None:
    if answer is None or len(answer) <= ANSWER_EXCERPT_CHARS:
        return answer
    return answer[:ANSWER_EXCERPT_CHARS] + f"[... envfarm: truncated, {len(answer)} chars]"


@functools.lru_cache(maxsize=32)
def _world(seed: int) -> tuple[World, BM25Index]:
    world = build_world(seed)
    return world, BM25Index(world.docs)


class GeneralEnv(ToolEnv):
    """Search and app tasks. `judge` (a `JudgeConfig` or dict) turns on the LLM judge."""

    tool_classes = (SearchTool, OpenTool, FindTool, FinishTool)

    def __init__(self, *, judge: JudgeConfig | dict | None = None,
                 judge_http_client: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config = JudgeConfig.model_validate(judge) if isinstance(judge, dict) else judge
        self.judge = LLMJudge(config, judge_http_client) if config else None
        self.corpus_index: BM25Index | None = None
        self.world: World | None = None
        self.question: Question | None = None
        self.scenario: Scenario | None = None

    def _begin(self, task_id: str | None, seed: int | None) -> tuple[list[dict], list[Tool]]:
        if task_id is None:
            task_id = DEFAULT_TASKS[int(self.np_random.integers(0, len(DEFAULT_TASKS)))]
        self.task_id, self.question, self.scenario, self.corpus_index = task_id, None, None, None
        if m := _SEARCH_ID.match(task_id):
            world_seed, q_seed, depth, obf = (int(g) for g in m.groups())
            self.world, self.corpus_index = _world(world_seed)
            self.question = make_question(self.world, q_seed, depth, obf)
            messages = [{"role": "system", "content": SEARCH_PROMPT},
                        {"role": "user", "content": self.question.text}]
            return messages, [SearchTool(), OpenTool(), FindTool(), FinishTool()]
        if m := _APPS_ID.match(task_id):
            self.scenario = make_scenario(m.group(1), int(m.group(2)))
            self._start_apps(self.scenario)
            messages = [{"role": "system", "content": APPS_PROMPT},
                        {"role": "user", "content": self.scenario.instruction}]
            return messages, [*(AppTool(n) for n in self.scenario.tools), FinishTool()]
        raise ValueError(f"unknown general task id {task_id!r}: expected "
                         "search-<world>-<q>-d<1-4>-o<0|1> or apps-<shop|invoice|calendar>-<seed>")

    def _start_apps(self, scenario: Scenario) -> None:
        from sandbox import Limits, SandboxError
        from sandbox.images import base_image

        self.sandbox = self.backend.start(base_image(), Limits(memory_mb=512, timeout_s=30))
        self.sandbox.write_file(SERVER_PATH, SERVER_SOURCE.read_bytes())
        seeded = call_app(self.sandbox, "__seed__", scenario.state)
        if "seeded" not in seeded:
            raise SandboxError(f"could not load the app state: {seeded[-500:]}")

    def _verify(self) -> VerifierResult:
        answer = self.final_answer
        if self.question is not None:
            q = self.question
            mode = "number" if q.answer_kind == "number" else "normalized"
            ok = match_answer(answer, q.answer, mode)
            details: dict[str, Any] = {"answer": _excerpt(answer), "reference": q.answer, "mode": mode,
                                       "depth": q.depth, "obfuscation": q.obfuscation}
            if not ok and self.judge is not None and answer:
                ok = self.judge(q.text, q.answer, answer)
                details["judge"] = ok
                details["judge_replies"] = [r[:200] for r in self.judge.replies]
            return VerifierResult(float(ok), details)
        if self.scenario is None or self.sandbox is None:
            return VerifierResult(0.0, {}, "infra_error", "no task to verify")
        s = self.scenario
        stop_agent(self.sandbox, self.backend)
        dump = self.sandbox.exec(DUMP_COMMAND, timeout_s=60)
        raw = dump.output.strip()
        try:
            state = json.loads(raw)
        except ValueError:
            if dump.truncated:
                raise AgentCaused("the app state is too large to read back") from None
            return VerifierResult(0.0, {"dump": raw[-1000:]}, "infra_error",
                                  "could not read the app state")
        checks = check_state(s, state)
        mode = "number" if s.answer_kind == "number" else "exact"
        checks["answer"] = match_answer(answer, s.answer, mode)
        return VerifierResult(float(all(checks.values())),
                              {"checks": checks, "answer": _excerpt(answer), "reference": s.answer})

    def oracle_actions(self, task_id: str | None = None) -> list[dict]:
        """The reference call sequence of `task_id` (default: this episode's), one call a turn."""
        if task_id is not None:
            if m := _SEARCH_ID.match(task_id):
                world_seed, q_seed, depth, obf = (int(g) for g in m.groups())
                world = _world(world_seed)[0]
                steps = oracle_steps(world, make_question(world, q_seed, depth, obf))
            elif m := _APPS_ID.match(task_id):
                steps = make_scenario(m.group(1), int(m.group(2))).oracle
            else:
                raise ValueError(f"unknown general task id {task_id!r}")
        elif self.question is not None and self.world is not None:
            steps = oracle_steps(self.world, self.question)
        elif self.scenario is not None:
            steps = self.scenario.oracle
        else:
            raise RuntimeError("give a task id or call reset() first")
        return [{"content": "", "tool_calls": [step]} for step in steps]
