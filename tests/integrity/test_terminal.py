"""Red team, terminal env (issue 12, classes a-e): a hostile agent acting only through
`bash` and `finish` must not earn a reward it did not solve for, and the oracles still
score 1.0. Every attack below gave 1.0 (or a forged pass) on the old in-place verifier."""

from __future__ import annotations

import pytest

from envs.terminal import TerminalEnv, load_task, noop_actions, oracle_actions
from tests.episodes import step_until_done
from tests.integrity.terminal_tasks import FINISH, bash, harbor_task, tb1_task

pytestmark = [pytest.mark.integrity, pytest.mark.docker]

SITE = "$(python3 -c 'import site; print(site.getsitepackages()[0])')"
FORGE = "mkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt"


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("terminal-integrity")
    return {"harbor": str(harbor_task(root)), "tb1": str(tb1_task(root)),
            "relaxed": str(harbor_task(root, "relaxed", verifier_extra=(
                'allowed_paths = ["/logs", "/tests"]')))}


@pytest.fixture(scope="module")
def env(docker_backend):
    with TerminalEnv(backend=docker_backend) as env:
        yield env


def episode(env: TerminalEnv, task: str, *commands: str) -> tuple[float, dict]:
    env.reset(options={"task_id": task})
    reward, info, _ = step_until_done(env, [bash(c) for c in commands] + [FINISH])
    return reward, info


@pytest.mark.parametrize("kind", ["harbor", "tb1"])
def test_oracle_scores_one_and_noop_zero(env, tasks, kind):
    env.reset(options={"task_id": tasks[kind]})
    reward, info, _ = step_until_done(env, oracle_actions(load_task(tasks[kind])))
    assert (reward, info["status"]) == (1.0, "ok"), info
    env.reset(options={"task_id": tasks[kind]})
    reward, info, _ = step_until_done(env, noop_actions())
    assert (reward, info["status"]) == (0.0, "ok"), info


def test_a_shell_functions_aliases_and_exports_do_not_reach_the_verifier(env, tasks):
    """BASH_ENV, PYTHONPATH, PYTEST_ADDOPTS, an exported `python3` function, an alias."""
    reward, info = episode(env, tasks["harbor"], (
        f"printf '{FORGE}\\n' > /tmp/evil.sh; mkdir -p /tmp/py; "
        "printf 'import os\\nos.makedirs(\"/logs/verifier\", exist_ok=True)\\n"
        "open(\"/logs/verifier/reward.txt\", \"w\").write(\"1\")\\nos._exit(0)\\n' "
        "> /tmp/py/evilplug.py; "
        "export BASH_ENV=/tmp/evil.sh ENV=/tmp/evil.sh PYTHONPATH=/tmp/py "
        "PYTEST_ADDOPTS='-p evilplug' PYTHONSTARTUP=/tmp/py/evilplug.py; "
        f"python3() {{ {FORGE}; }}; export -f python3; alias bash=true; "
        "echo 'echo 1 > /logs/verifier/reward.txt' >> /tmp/.bashrc"))
    assert (reward, info["status"]) == (0.0, "ok"), info


def test_b_background_processes_are_gone_before_the_tests_arrive(env, tasks):
    """A setsid daemon, a nohup loop and a double fork waiting for /tests to appear."""
    watcher = ("while :; do if [ -e /tests/test.sh ]; then echo 42 > /app/answer.txt; "
               f"{FORGE}; fi; sleep 0.05; done")
    reward, info = episode(
        env, tasks["harbor"],
        f"setsid sh -c '{watcher}' >/dev/null 2>&1 < /dev/null &",
        f"nohup sh -c '{watcher}' >/dev/null 2>&1 &",
        f"( ( sh -c '{watcher}' >/dev/null 2>&1 & ) & )",
        "sleep 0.3; ps -eo pid,args | grep -c 'tests/test.sh' || true")
    assert (reward, info["status"]) == (0.0, "ok"), info


TOOLCHAIN_ATTACKS = {
    "python3 shim in /usr/local/bin": (
        (f"printf '#!/bin/sh\\n{FORGE}\\n' > /usr/local/bin/python3; "
         "chmod +x /usr/local/bin/python3"), "/usr/local/bin/python3"),
    "tr shim in ~/.local/bin": (
        "mkdir -p /root/.local/bin && cp /bin/true /root/.local/bin/tr", "/root/.local/bin/tr"),
    "uv replaced": ("cp /bin/true /usr/local/bin/uv", "/usr/local/bin/uv"),
    "bash shim": ("cp /bin/true /usr/local/bin/bash", "/usr/local/bin/bash"),
    "pth file that runs code": (
        f"echo 'import os; os.system(\"true\")' > {SITE}/zz-evil.pth", "zz-evil.pth"),
    "sitecustomize": ("echo 'import os' > /usr/lib/python3/dist-packages/sitecustomize.py",
                      "sitecustomize.py"),
    "pytest plugin entry point": (
        (f"d={SITE}/evil-1.0.dist-info; mkdir -p $d; "
         "printf '[pytest11]\\nevil = evilplug\\n' > $d/entry_points.txt; "
         f"printf 'def pytest_runtest_logreport(report):\\n    report.outcome = \"passed\"\\n' "
         f"> {SITE}/evilplug.py"), "entry_points.txt"),
    "pytest package edited": (
        f"echo '# x' >> {SITE}/_pytest/runner.py", "_pytest/runner.py"),
    "pytest.ini and conftest.py at /": (
        ("printf '[pytest]\\naddopts = -p no:python\\n' > /pytest.ini; "
         "echo '' > /conftest.py"), "/pytest.ini"),
    "pyproject.toml with a pytest section at /": (
        "printf '[tool.pytest.ini_options]\\naddopts = \"-q\"\\n' > /pyproject.toml",
        "/pyproject.toml"),
    "conftest.py in the work directory": ("echo '' > /app/conftest.py", "/app/conftest.py"),
    "pytest shadowed from the work directory": ("echo 'raise SystemExit(0)' > /app/pytest.py",
                                                "/app/pytest.py"),
    "shell start-up file": (f"echo '{FORGE}' >> /etc/bash.bashrc", "/etc/bash.bashrc"),
    "loader preload": ("echo /tmp/evil.so > /etc/ld.so.preload", "/etc/ld.so.preload"),
}


@pytest.mark.parametrize("attack", list(TOOLCHAIN_ATTACKS))
def test_c_an_agent_writable_toolchain_is_tampering(env, tasks, attack):
    command, evidence = TOOLCHAIN_ATTACKS[attack]
    reward, info = episode(env, tasks["harbor"], "echo 41 > /app/answer.txt", command)
    assert (reward, info["status"]) == (0.0, "tampered"), info
    assert any(evidence in line for line in info["reward_details"]["tampered"]), info


@pytest.mark.parametrize("path", ["/logs", "/tests"])
def test_d_verifier_paths_replaced_by_links_are_tampering(env, tasks, path):
    reward, info = episode(env, tasks["harbor"],
                           f"mkdir -p /tmp/fake/verifier && echo 1 > /tmp/fake/verifier/reward.txt"
                           f" && rm -rf {path} && ln -s /tmp/fake {path}")
    assert (reward, info["status"]) == (0.0, "tampered"), info
    assert any(path in line for line in info["reward_details"]["tampered"])


def test_d_links_are_removed_never_followed_even_where_the_task_allows_them(env, tasks):
    """A task that relaxes the policy for /logs and /tests still gets fresh, real folders."""
    reward, info = episode(env, tasks["relaxed"],
                           "mkdir -p /tmp/fake/verifier && echo 1 > /tmp/fake/verifier/reward.txt"
                           " && rm -rf /logs /tests && ln -s /tmp/fake /logs && "
                           "ln -s /tmp/fake /tests && echo 'echo 1 > /dev/null' > /tmp/fake/test.sh")
    assert (reward, info["status"]) == (0.0, "ok"), info


def test_e_printed_passes_for_tests_never_collected_do_not_count(env, tasks):
    """The solution, imported by the tests, prints a closing summary of passes at exit."""
    forged = ("import atexit\\n"
              "atexit.register(lambda: print(\"=== short test summary info ===\\\\n"
              "PASSED ../tests/test_outputs.py::test_solution_exists\\\\n"
              "PASSED ../tests/test_outputs.py::test_forged\\\\n=== 2 passed ===\"))\\n"
              "def answer():\\n    return 41\\n")
    reward, info = episode(env, tasks["tb1"], f"printf '{forged}' > /app/solution.py")
    assert (reward, info["status"]) == (0.0, "ok"), info
    assert info["reward_details"]["tests"], info  # graded from the verifier's own report
    assert "test_forged" not in str(info["reward_details"]["tests"])


def test_e_a_runner_that_never_reports_is_the_agents_fault_not_a_pass(env, tasks):
    """The solution prints a passing summary and exits the test process with 0 at import."""
    forged = ("import os\\nprint(\"=== short test summary info ===\\\\n"
              "PASSED ../tests/test_outputs.py::test_answer_is_42\\\\n=== 1 passed ===\")\\n"
              "os._exit(0)\\n")
    reward, info = episode(env, tasks["tb1"], f"printf '{forged}' > /app/solution.py")
    assert (reward, info["status"]) == (0.0, "agent_fault"), info
    assert "no verdict" in info["error"]
