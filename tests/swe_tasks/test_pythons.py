"""Version-matched Pythons, the black-holed network, and build failures explained, on a
real Docker engine: a real PyPI package (more-itertools 11, tests/swe_tasks/realdata.py,
which needs Python >= 3.10) validated on Python 3.13 from a Debian trixie root, and
refused by Python 3.9 with the cause in the verdict."""

from __future__ import annotations

import pytest

from sandbox import Limits, TaskError
from swe_tasks import git_source, network
from swe_tasks.environment import needs_instance_layer
from swe_tasks.instance import SWEInstance
from swe_tasks.pythons import PythonUnavailable, ensure_python, providers, python_layer_spec
from swe_tasks.repo_spec import SPECS, RepoSpec, register
from swe_tasks.validation import validate_instance
from tests.swe_tasks.realdata import real_records

pytestmark = pytest.mark.docker


def test_providers_are_chosen_by_name(monkeypatch):
    monkeypatch.setenv("ENVFARM_PYTHON_PROVIDERS", "uv,debian")
    assert providers() == ["uv", "debian"]
    monkeypatch.setenv("ENVFARM_PYTHON_PROVIDERS", "conda-forge")
    with pytest.raises(TaskError, match="unknown providers"):
        providers()
    uv = python_layer_spec("3.10", "uv", "envfarm/base:x")
    assert "uv python install 3.10" in uv.steps and uv.env["PATH"].startswith("/opt/envfarm/python")


def test_a_python_no_provider_has_is_a_task_error_naming_it(monkeypatch):
    monkeypatch.setenv("ENVFARM_PYTHON_PROVIDERS", "debian")
    with pytest.raises(PythonUnavailable) as err:
        ensure_python("3.6")
    msg = str(err.value)
    assert "Python 3.6 cannot be had here" in msg and "bullseye 3.9" in msg
    assert isinstance(err.value, TaskError)  # -> status task_error, never retried


@pytest.mark.slow
def test_python_39_layer_from_bullseye(docker_backend):
    tag = ensure_python("3.9")
    with docker_backend.start(tag, Limits(network=False, timeout_s=60)) as sb:
        out = sb.exec("python --version; pip --version; gcc --version | head -1").output
    assert "Python 3.9." in out and "pip 25" in out and "gcc" in out


def test_blackholed_connects_time_out_and_names_fail_fast(docker_backend, base_image):
    probe = ("python3 - <<'EOF'\nimport socket, time\n"
             "s = socket.socket(); s.settimeout(1.5); t = time.time()\n"
             "try:\n    s.connect(('10.255.255.1', 80))\nexcept OSError as e:\n"
             "    print('connect', type(e).__name__, round(time.time() - t, 1))\n"
             "t = time.time()\ntry:\n    socket.getaddrinfo('pypi.org', 443)\n"
             "except OSError as e:\n    print('dns', type(e).__name__, round(time.time() - t, 1))\n"
             "EOF")
    with docker_backend.start(base_image, Limits(network=False, timeout_s=60)) as sb:
        plain = sb.exec(probe).output
        assert network.blackhole(sb)
        holed = sb.exec(probe).output
    assert "connect OSError 0.0" in plain  # no route: fails at once (ENETUNREACH)
    connect, dns = holed.splitlines()
    assert connect.startswith("connect TimeoutError 1.")  # what timeout tests expect
    assert dns.startswith("dns gaierror") and float(dns.split()[-1]) < 3


@pytest.fixture
def real_instance(tmp_path_factory):
    rec = next(r for r in real_records(tmp_path_factory.mktemp("realdata"))
               if r["instance_id"] == "more-itertools__exactly-n-negative")
    inst = SWEInstance.model_validate(rec)
    yield inst
    SPECS.pop((inst.repo, "11"), None)


@pytest.mark.slow
def test_gold_valid_on_python_313_and_empty_patch_scores_0(real_instance, docker_backend):
    register(real_instance.repo, "11", RepoSpec(
        python="3.13", pip_packages=["pytest==8.3.5"], install=["pip install -e ."],
        build_tools=True))
    verdict = validate_instance(real_instance, runs=1, backend=docker_backend)
    assert verdict.status == "valid", verdict.reason
    with docker_backend.start(verdict.image, Limits(network=False, timeout_s=60)) as sb:
        assert sb.exec("python --version").output.startswith("Python 3.13.")
        # installed at its own base_commit (10.8.0), as the harness installs each
        # instance: its environment commit is 11.1.0, whose pyproject.toml differs
        shown = sb.exec("pip show more-itertools | grep ^Version").output
    assert "10.8.0" in shown
    assert needs_instance_layer(real_instance, git_source.resolve(real_instance.repo))
    (run,) = verdict.runs
    assert run.before == {"tests/test_more.py::ExactlyNTests::test_false": "failed"}


@pytest.mark.slow
def test_an_image_that_does_not_build_is_a_task_error_with_its_log(real_instance,
                                                                   docker_backend):
    register(real_instance.repo, "11", RepoSpec(
        python="3.9", pip_packages=[], install=["pip install -e ."], build_tools=True))
    verdict = validate_instance(real_instance, runs=1, backend=docker_backend)
    assert verdict.status == "task_error" and not verdict.runs
    assert "environment image does not build" in verdict.reason
    # the cause, not just "returned a non-zero code: 1"
    assert "requires a different Python: 3.9" in verdict.reason
    assert "pip install -e ." in verdict.log_tail


@pytest.mark.slow
def test_httpbin_network_answers_for_httpbin_org_and_nothing_else(docker_backend, base_image):
    """Old requests suites call http://httpbin.org and https://httpbin.org (SWE-bench ran
    them online); https verifies against the image's own CA, named to the test runs."""
    from sandbox import ImageBuilder, ImageSpec

    tag = ImageBuilder().ensure(ImageSpec(name="test-httpbin", base=base_image,
                                          steps=[network.HTTPBIN_INSTALL, network.HTTPBIN_TLS]))
    ca = network.runner_env("httpbin")["REQUESTS_CA_BUNDLE"]
    probe = ("python3 - <<'EOF'\nimport json, socket, ssl, urllib.request\n"
             "print(json.load(urllib.request.urlopen('http://httpbin.org/get?a=1'))['args'])\n"
             f"ctx = ssl.create_default_context(cafile='{ca}')\n"
             "print(json.load(urllib.request.urlopen('https://httpbin.org/get?b=2', "
             "context=ctx))['args'])\n"
             "try:\n    urllib.request.urlopen('https://httpbin.org/get')\n"
             "except OSError as e:\n    print('untrusted', type(e).__name__)\n"
             "try:\n    socket.getaddrinfo('example.org', 80)\n"
             "except OSError as e:\n    print('dns', type(e).__name__)\nEOF")
    with docker_backend.start(tag, Limits(network=False, timeout_s=60)) as sb:
        assert network.prepare(sb, "httpbin")
        out = sb.exec(probe).output
    assert "{'b': '2'}" in out and "untrusted URLError" in out, out
    assert "{'a': '1'}" in out and "dns gaierror" in out
