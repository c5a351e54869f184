"""Small terminal tasks generated in a temporary folder, for the red-team suite.

They reuse the bundled example's Dockerfile (so every task shares its one image) and
check a file the honest agent writes: `/app/answer.txt` must hold 42. The Harbor task's
`test.sh` runs pytest from the work directory (as Terminal-Bench scripts do) and writes
the reward; the Terminal-Bench 1 task imports the agent's `/app/solution.py` into the
tests' process, as evoeval tasks do.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from envs.terminal.env import EXAMPLE_TASKS

HARBOR_TEST = """#!/bin/bash
cd /app
python3 -m pytest -q /tests/test_answer.py
if [ $? -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
"""
HARBOR_PYTEST = """from pathlib import Path


def test_answer_is_42():
    assert Path("/app/answer.txt").read_text().strip() == "42"
"""
TB1_RUN_TESTS = """#!/bin/bash
cd /app
python3 -m pytest $TEST_DIR/test_outputs.py -rA
"""
TB1_PYTEST = """import importlib.util
import sys


def _solution():
    spec = importlib.util.spec_from_file_location("solution", "/app/solution.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["solution"] = module
    spec.loader.exec_module(module)
    return module


def test_solution_exists():
    assert _solution() is not None


def test_answer_is_42():
    assert _solution().answer() == 42
"""
SOLVE_HARBOR = "#!/bin/bash\necho 42 > /app/answer.txt\n"
SOLVE_TB1 = "#!/bin/bash\nprintf 'def answer():\\n    return 42\\n' > /app/solution.py\n"


def harbor_task(root: Path, name: str = "answer-42", test_sh: str = HARBOR_TEST,
                verifier_extra: str = "") -> Path:
    folder = root / name
    (folder / "environment").mkdir(parents=True)
    shutil.copy(EXAMPLE_TASKS / "hello-file" / "environment" / "Dockerfile",
                folder / "environment" / "Dockerfile")
    (folder / "instruction.md").write_text("Write 42 into /app/answer.txt.\n")
    (folder / "task.toml").write_text(
        f"version = \"1.0\"\n[verifier]\ntimeout_sec = 60.0\n{verifier_extra}\n"
        "[agent]\ntimeout_sec = 120.0\n[environment]\ncpus = 1\nmemory_mb = 1024\n")
    (folder / "tests").mkdir()
    (folder / "tests" / "test.sh").write_text(test_sh)
    (folder / "tests" / "test_answer.py").write_text(HARBOR_PYTEST)
    (folder / "solution").mkdir()
    (folder / "solution" / "solve.sh").write_text(SOLVE_HARBOR)
    return folder


def tb1_task(root: Path, name: str = "solution-42") -> Path:
    folder = root / "dataset" / name
    (folder / "tests").mkdir(parents=True)
    shutil.copy(EXAMPLE_TASKS / "hello-file" / "environment" / "Dockerfile", folder / "Dockerfile")
    (folder / "task.yaml").write_text(
        "instruction: Write /app/solution.py with a function answer() returning 42.\n"
        "max_agent_timeout_sec: 120\nmax_test_timeout_sec: 60\n")
    (folder / "run-tests.sh").write_text(TB1_RUN_TESTS)
    (folder / "tests" / "test_outputs.py").write_text(TB1_PYTEST)
    (folder / "solution.sh").write_text(SOLVE_TB1)
    return folder


def bash(command: str, timeout: float = 60) -> dict[str, Any]:
    """One assistant turn running `command`."""
    return {"content": "", "tool_calls": [{"name": "bash", "arguments": {
        "command": command, "timeout": timeout}}]}


FINISH = {"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]}
