"""The environment image of an SWE instance: one per (repo, version / environment commit).

Layers: base -> Python layer (`swe_tasks.pythons`, shared by every repository version
that asks for that Python) -> this image. The image holds the tree of the environment
commit in /testbed, installed by the repo's `RepoSpec`, plus `/opt/envfarm/tracked.txt`
(the files of that tree). No git history and nothing per instance: each sandbox
replaces the tracked files with its own `base_commit` tree at start (see
`swe_tasks.workspace`), keeping what the install built (egg-info, compiled extensions)
out of sight of git.

A default spec on the base's own Python builds straight on the envfarm base (no Python
layer): plain packages need no compilers.

Installed as the SWE-bench harness installs: the harness installs the repository at each
instance's `base_commit` (its per-instance image), so a dependency the code gained after
the environment commit is there (pytest-dev__pytest-5809's base imports
`importlib_metadata`, which its environment commit asks for only below Python 3.8). Here
an instance whose install files (`INSTALL_FILES`) differ from the environment commit's
gets one thin layer more (`instance_layer_spec`): its tree in /testbed and the spec's
`pre_install` + `install` run again. Instances whose install files match share the
environment image, with nothing per instance.

Dependencies the fix adds. The harness installs the repository again after a patch is
applied, online; here tests run offline, so a fix that declares a new dependency
(pylint-dev__pylint-4661 adds `appdirs` to setup.cfg and imports it) could never pass.
Where the gold patch changes install files, the instance layer also installs what those
changed files ask for beyond what is installed (`GOLD_DEPS`: pip's own resolution of the
patched tree, dry run; the project itself is not installed from it): an agent that writes
the same fix can import them. Only the install files' hunks enter the build, and they are
deleted in the step that reads them: no layer the agent sees holds any of the fix.

Editable installs land where Python looks. Debian's Python puts pip's packages in
`/usr/local/lib/python3.X/dist-packages`, while a legacy `setup.py develop` (pip's editable
install of a setup.py project) writes its egg-link and `easy-install.pth` under
`sys.prefix`'s `lib/python3.X/site-packages`, which is not on `sys.path`: the package
then imports only from /testbed itself, and tests that run it from elsewhere fail
(pylint's test_self subprocesses in tmp folders: "No module named pylint"). The last
step of every environment image (`SITE_DIRS`) makes those folders site folders.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
from pathlib import Path

from sandbox import ImageBuilder, ImageSpec
from swe_tasks import git_source
from swe_tasks.instance import SWEInstance
from swe_tasks.network import HTTPBIN_INSTALL, HTTPBIN_TLS
from swe_tasks.pythons import BASE_PYTHON, ensure_python
from swe_tasks.repo_spec import RepoSpec, spec_for

TRACKED = "/opt/envfarm/tracked.txt"
_SRC_TAR = "/opt/envfarm/src.tar"
GIT_SETUP = (
    "git config --system user.name envfarm && git config --system user.email envfarm@localhost"
    " && git config --system init.defaultBranch main && git config --system advice.detachedHead"
    " false && git config --system safe.directory '*'"
)
# conda names whose pip name differs; conda-only packages fail their own pip line only.
_CONDA_TO_PIP = {"dask-core": "dask", "matplotlib-base": "matplotlib", "pytorch": "torch",
                 "pyqt": "PyQt5", "python-graphviz": "graphviz", "pytables": "tables"}
_YML_DEPS = r"""import re, sys, yaml
doc = yaml.safe_load(open(sys.argv[1])) or {}
names = %r
for dep in doc.get("dependencies") or []:
    items = dep.get("pip", []) if isinstance(dep, dict) else [dep]
    for d in items:
        d = str(d).split("::")[-1].strip()
        name = re.split(r"[<>=!~ ]", d, maxsplit=1)[0]
        if name in ("python", "pip") or not name:
            continue
        rest = d[len(name):].strip()
        if re.fullmatch(r"=[^=<>].*", rest):  # conda's "=1.2" is pip's "==1.2.*"
            rest = "=" + rest + ("" if rest.endswith("*") else ".*")
        print(names.get(name, name) + rest)
""" % (_CONDA_TO_PIP,)


def image_name(instance: SWEInstance) -> str:
    """A Docker-safe name for the instance's environment image."""
    key = instance.image_key
    if key.startswith(("/", "~", "file://", ".")):  # a local repo: its folder name will do
        key = key.rstrip("/").rsplit("/", 1)[-1]
    raw = f"swe-{key}".lower()
    return re.sub(r"[^a-z0-9_.-]+", "-", raw).strip("-.")[:100]


INSTALL_FILES = ("setup.py", "setup.cfg", "pyproject.toml")
"""Files whose content decides what installing the repository pulls in."""


def env_commit(instance: SWEInstance) -> str:
    return instance.environment_setup_commit or instance.base_commit


def uses_python_layer(spec: RepoSpec) -> bool:
    """Whether the image builds on a Python layer rather than on the envfarm base."""
    return spec.python != BASE_PYTHON or spec.build_tools


def _quoted(packages: list[str]) -> str:
    return " ".join(shlex.quote(p) for p in packages)


SITE_DIRS = """python - <<'EOF'
import os, sys, pip
v = "%d.%d" % sys.version_info[:2]
d = os.path.join(sys.prefix, "lib", "python" + v, "site-packages")
if d not in sys.path:  # the .pth goes where pip installs
    with open(os.path.join(os.path.dirname(os.path.dirname(pip.__file__)), "envfarm-site-dirs.pth"), "w") as f:
        f.write("import site; site.addsitedir(%r)\\n" % d)
EOF"""
"""The image step that puts the folders `setup.py develop` writes to on `sys.path`
(module docstring); done last so the layers before it stay cached."""
_GOLD_INSTALL = "/opt/envfarm/install-files.diff"
GOLD_DEPS = r"""set -u
rm -rf /tmp/envfarm-gold && cp -a /testbed /tmp/envfarm-gold && cd /tmp/envfarm-gold
(git apply --whitespace=nowarn {diff} 2>/dev/null || patch --batch -p1 -i {diff} >/dev/null)
rm -f {diff}
python -m pip install --dry-run --quiet --report /tmp/envfarm-gold.json /tmp/envfarm-gold
python - <<'EOF' > /tmp/envfarm-gold.txt
import json
for item in json.load(open("/tmp/envfarm-gold.json"))["install"]:
    if (item.get("download_info") or {}).get("url", "").startswith("file:"):
        continue  # the project itself
    print(item["metadata"]["name"] + "==" + item["metadata"]["version"])
EOF
cd / && rm -rf /tmp/envfarm-gold /tmp/envfarm-gold.json
if [ -s /tmp/envfarm-gold.txt ]; then echo "envfarm: the fix's install files add:"; \
  cat /tmp/envfarm-gold.txt; python -m pip install -r /tmp/envfarm-gold.txt; fi
rm -f /tmp/envfarm-gold.txt""".replace("{diff}", _GOLD_INSTALL)
"""The instance-layer step that installs what the gold patch's install files add."""


def gold_install_diff(instance: SWEInstance) -> str:
    """The gold patch's hunks on install files (`INSTALL_FILES`, requirements files at the
    root), or "" when it touches none."""
    from swe_tasks.integrity import split_patch

    try:
        blocks = split_patch(instance.patch)
    except ValueError:
        return ""
    return "".join(b.text for b in blocks if b.path in INSTALL_FILES
                   or (b.path.startswith("requirements") and b.path.endswith(".txt")))


def install_steps(spec: RepoSpec) -> list[str]:
    """The image's install steps after /testbed holds the tree (see `RepoSpec`)."""
    steps = []
    if spec.packages:
        steps.append(f"pip install {_quoted(spec.packages)}")
    if spec.requirements:
        steps.append(
            f"cd /testbed && for f in {_quoted(spec.requirements)}; do "
            'if [ -f "$f" ]; then echo "envfarm: requirements from $f"; pip install -r "$f"; '
            "break; fi; done")
    if spec.environment_yml:
        steps.append(
            f"cd /testbed && cat > /tmp/envfarm-yml.py <<'EOF'\n{_YML_DEPS}EOF\n"
            "python -c 'import yaml' 2>/dev/null || pip install pyyaml\n"
            f"for f in {_quoted(spec.environment_yml)}; do if [ -f \"$f\" ]; then "
            'python /tmp/envfarm-yml.py "$f" > /tmp/envfarm-yml.txt; break; fi; done\n'
            "touch /tmp/envfarm-yml.txt; while IFS= read -r dep; do "
            'pip install "$dep" || echo "envfarm: conda package $dep has no pip install"; '
            "done < /tmp/envfarm-yml.txt; rm -f /tmp/envfarm-yml.*")
    if spec.pip_packages:
        steps.append(f"pip install {_quoted(spec.pip_packages)}")
    if spec.pre_install:  # one shell: the harness's steps set variables used by later ones
        steps.append("cd /testbed\n" + "\n".join(spec.pre_install))
    steps += [f"cd /testbed && {step}" for step in spec.install]
    if spec.runner == "pytest":
        steps.append("python -c 'import pytest' 2>/dev/null || pip install pytest")
    if spec.network == "httpbin":
        steps += [HTTPBIN_INSTALL, HTTPBIN_TLS]
    if spec.install:
        steps.append(SITE_DIRS)
    return steps


def image_spec(instance: SWEInstance, spec: RepoSpec | None = None,
               builder: ImageBuilder | None = None) -> ImageSpec:
    """The ImageSpec of `instance`'s environment. Raises TaskError if the code is
    unreachable (SourceUnavailable) or its Python cannot be had (PythonUnavailable)."""
    spec = spec or spec_for(instance)
    git_dir = git_source.resolve(instance.repo)
    tree = git_source.archive(git_dir, env_commit(instance))
    base = None
    if uses_python_layer(spec):
        base = ensure_python(spec.python, builder or ImageBuilder())
    steps = [
        GIT_SETUP,
        (f"mkdir -p /testbed && tar -xf {_SRC_TAR} -C /testbed --no-same-owner"
        f" && tar -tf {_SRC_TAR} | grep -v '/$' > {TRACKED} && rm -f {_SRC_TAR}"),
        *install_steps(spec),
    ]
    return ImageSpec(name=image_name(instance), base=base, files={_SRC_TAR: tree}, steps=steps,
                     env=spec.env, workdir="/testbed")


def install_files(git_dir: Path, commit: str) -> str:
    """`git ls-tree` of `commit`'s install files (modes, blob ids, paths): equal output,
    equal install."""
    proc = subprocess.run(["git", "ls-tree", commit, "--", *INSTALL_FILES], cwd=git_dir,
                          capture_output=True, text=True, check=False, timeout=60)
    return proc.stdout if proc.returncode == 0 else f"unreadable {commit}"


def needs_instance_layer(instance: SWEInstance, git_dir: Path) -> bool:
    """Whether `instance` installs differently from its environment commit (see the
    module docstring): its base_commit's install files differ."""
    base = instance.base_commit
    return base != env_commit(instance) and (
        install_files(git_dir, base) != install_files(git_dir, env_commit(instance)))


def instance_layer_spec(instance: SWEInstance, spec: RepoSpec, env_image: str) -> ImageSpec:
    """The thin layer on `env_image` that installs `instance`'s own base_commit."""
    tree = git_source.archive(git_source.resolve(instance.repo), instance.base_commit)
    swap = (f"cd /testbed && while IFS= read -r f; do rm -f -- \"$f\"; done < {TRACKED}"
            f" && tar -xf {_SRC_TAR} --no-same-owner && tar -tf {_SRC_TAR} | grep -v '/$'"
            f" > {TRACKED} && rm -f {_SRC_TAR}")
    steps = [swap]
    if spec.pre_install:
        steps.append("cd /testbed\n" + "\n".join(spec.pre_install))
    steps += [f"cd /testbed && {step}" for step in spec.install]
    files: dict[str, str | bytes] = {_SRC_TAR: tree}
    gold = gold_install_diff(instance)
    if gold:
        files[_GOLD_INSTALL] = gold
        steps.append(GOLD_DEPS)
    name = re.sub(r"[^a-z0-9_.-]+", "-", f"swe-{instance.instance_id}".lower()).strip("-.")
    return ImageSpec(name=name[:100], base=env_image, files=files, steps=steps,
                     env=spec.env, workdir="/testbed")


def ensure_image(instance: SWEInstance, builder: ImageBuilder | None = None,
                 spec: RepoSpec | None = None) -> str:
    """The tag of the instance's environment image, built on first use.

    The instance's own install layer on top of it where its install files differ from
    the environment commit's (module docstring). Raises ImageBuildError (a TaskError: the
    environment is broken, do not retry; its `log` holds the build log),
    PythonUnavailable (a TaskError) or SandboxError when the engine fails.
    """
    spec = spec or spec_for(instance)
    builder = builder or ImageBuilder()
    env_tag = ensure_env_image(instance, builder, spec)
    if not spec.install:
        return env_tag
    key = (instance.repo, instance.base_commit, env_tag)
    with _guard:
        tag = _known.get(key)
    if tag is not None and builder.exists(tag):
        return tag
    tag = env_tag
    if needs_instance_layer(instance, git_source.resolve(instance.repo)) or \
            gold_install_diff(instance):
        tag = builder.ensure(instance_layer_spec(instance, spec, env_tag))
    with _guard:
        _known[key] = tag
    return tag


def ensure_env_image(instance: SWEInstance, builder: ImageBuilder, spec: RepoSpec) -> str:
    """The tag of the environment image (per repo version) `instance` builds on."""
    key = (instance.repo, env_commit(instance), instance.image_key, spec.model_dump_json())
    with _guard:
        tag = _known.get(key)
    if tag is not None and builder.exists(tag):
        return tag  # skips re-reading the tree from git on every sandbox start
    tag = builder.ensure(image_spec(instance, spec, builder))
    with _guard:
        _known[key] = tag
    return tag


_known: dict[tuple[str, ...], str] = {}
_guard = threading.Lock()
