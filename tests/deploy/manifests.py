"""What the deployment files say, read as data: YAML documents, the Dockerfile's
instructions, and the ``MEMBANK_*`` environment each container gets."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml

from membank_cli.app import app as cli_app

__all__ = [
    "COMPOSE",
    "COMPOSE_FILES",
    "K8S",
    "ROOT",
    "Instruction",
    "cli_command",
    "compose_env",
    "dockerfile",
    "image_env",
    "interpolated",
    "k8s_objects",
    "pod_specs",
    "yaml_docs",
]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
K8S = COMPOSE / "k8s"
COMPOSE_FILES = (COMPOSE / "docker-compose.yml", COMPOSE / "docker-compose.production.yml")
#: ``${NAME}``, ``${NAME:?message}``, ``${NAME:-default}``: compose's interpolation.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?[?\-+][^}]*)?\}")


def yaml_docs(path: Path) -> list[Any]:
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def k8s_objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml_docs(path):
            yield path, doc


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod template of the Kubernetes objects, by object name."""
    for _, obj in k8s_objects():
        spec = obj.get("spec", {})
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]


def interpolated(value: str, variables: Mapping[str, str]) -> str:
    """``value`` with compose's ``${NAME...}`` replaced from ``variables``."""
    return _VARIABLE.sub(lambda m: variables[m["name"]], value)


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    value: str
    flags: list[str] = field(default_factory=list)

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK ... CMD, else the shell words."""
        text = self.value.strip()
        if self.keyword == "HEALTHCHECK":
            text = re.split(r"(?:^|\s)CMD\s", text, maxsplit=1)[1].strip()
        if text.startswith("["):
            return [str(word) for word in json.loads(text)]
        return shlex.split(text)


def dockerfile(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, continuations joined, a
    heredoc kept as the text of its RUN; stages numbered from 0 by FROM."""
    lines = path.read_text().splitlines()
    out: list[Instruction] = []
    stage = -1
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        heredoc = re.search(r"<<-?'?(?P<tag>[A-Z]+)'?\s*$", line)
        if heredoc:
            body = []
            while lines[i].strip() != heredoc["tag"]:
                body.append(lines[i])
                i += 1
            i += 1
            line = line + "\n" + "\n".join(body)
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword, rest, flags))
    return out


def image_env(instructions: list[Instruction]) -> dict[str, str]:
    """The ENV of the image's last stage (``NAME=value`` pairs)."""
    last = max(ins.stage for ins in instructions)
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.stage == last and ins.keyword == "ENV":
            for pair in shlex.split(ins.value):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def cli_command(argv: list[str]) -> Any:
    """The ``membank`` command (a leaf, not a group) that ``argv`` runs, or None.
    (Typer carries its own click: groups are told by their ``commands``.)"""
    if not argv or argv[0] != "membank":
        return None
    command: Any = typer.main.get_command(cli_app)
    for word in argv[1:]:
        if word.startswith("-") or not hasattr(command, "commands"):
            break
        command = command.commands.get(word)
        if command is None:
            return None
    return None if hasattr(command, "commands") else command
