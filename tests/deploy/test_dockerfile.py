"""The Dockerfile, read instruction by instruction (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from membank_server.config import ServerSettings
from tests.deploy.manifests import ROOT, Instruction, cli_command, dockerfile, image_env
from tests.deploy.settings_check import accepted, is_secret

_PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return dockerfile()


def _final(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    last = max(ins.stage for ins in instructions)
    return [ins for ins in instructions if ins.stage == last and ins.keyword == keyword]


def test_the_parser_reads_continuations_heredocs_and_stages(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "# a comment\nFROM a:1.2.3 AS build\nRUN one \\\n    two\n"
        "RUN --network=none python - <<'X'\nprint(1)\nX\nFROM b:4.5.6\nUSER 10:10\n"
    )
    parsed = dockerfile(path)
    assert [(i.stage, i.keyword) for i in parsed] == [
        (0, "FROM"), (0, "RUN"), (0, "RUN"), (1, "FROM"), (1, "USER"),
    ]  # fmt: skip
    assert parsed[1].value == "one two"
    assert parsed[2].flags == ["--network=none"]
    assert parsed[2].value.endswith("\nprint(1)")


def test_multi_stage_on_one_pinned_base(instructions: list[Instruction]) -> None:
    bases = [ins.value.split()[0] for ins in instructions if ins.keyword == "FROM"]
    assert len(bases) >= 2, "build and runtime stages"
    for base in bases:
        assert _PINNED.match(base), f"base image {base} is not pinned to a full version"
    assert len(set(bases)) == 1, f"stages on different bases: {bases}"


def test_the_runtime_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    users = _final(instructions, "USER")
    assert users, "the runtime stage never sets USER"
    user = users[-1].value.split(":")[0]
    assert user.isdigit() and int(user) != 0, (
        f"USER {users[-1].value}: give a numeric non-root uid (Kubernetes runAsNonRoot checks it)"
    )
    assert user == "10001", "the manifests' runAsUser is 10001"


def test_the_entry_point_is_membank_serve(instructions: list[Instruction]) -> None:
    [entry] = _final(instructions, "ENTRYPOINT")
    argv = entry.exec_form()
    assert argv == ["membank", "serve"]
    command = cli_command(argv)
    assert command is not None and command.name == "serve"


def test_the_healthcheck_asks_health_on_the_served_port(instructions: list[Instruction]) -> None:
    [check] = _final(instructions, "HEALTHCHECK")
    text = " ".join(check.exec_form())
    assert "/health" in text
    env = image_env(instructions)
    port = env.get("MEMBANK_SERVER__PORT", str(ServerSettings().port))
    assert f"'{port}'" in text, "the healthcheck's default port is the served one"
    [expose] = _final(instructions, "EXPOSE")
    assert expose.value == port


def test_the_image_environment_is_real_settings_and_no_secret(
    instructions: list[Instruction],
) -> None:
    env = image_env(instructions)
    membank = {k: v for k, v in env.items() if k.startswith("MEMBANK_")}
    assert membank, "the image sets its listener and data folder"
    settings = accepted(membank)
    assert settings.server.host == "0.0.0.0"
    assert settings.storage.edge.path == "/var/lib/membank"
    for ins in instructions:
        if ins.keyword in ("ENV", "ARG"):
            for word in ins.value.split():
                name = word.partition("=")[0]
                assert not is_secret(name), f"{ins.keyword} {name}: a secret baked into the image"


def test_nothing_secret_is_copied_in(instructions: list[Instruction]) -> None:
    for ins in instructions:
        if ins.keyword in ("COPY", "ADD"):
            sources = ins.value.split()[:-1]
            for src in sources:
                assert not re.search(r"\.env|secret|\.pem|\.key|tls", src), f"COPY {src}"
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Everything is ignored but what the build needs, so a stray secret never enters.
    assert ignore[0] == "*"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed <= {"pyproject.toml", "README.md", "membank_server", "membank_cli", "loadtests"}


def test_the_model_is_checked_offline_at_build(instructions: list[Instruction]) -> None:
    runs = [ins for ins in instructions if ins.keyword == "RUN"]
    offline = [ins for ins in runs if "--network=none" in ins.flags]
    assert offline and "embed(" in offline[0].value, "an embedding with no network at build"


def test_the_healthcheck_form_is_exec(instructions: list[Instruction]) -> None:
    [check] = _final(instructions, "HEALTHCHECK")
    assert check.value.startswith("CMD [")
    assert check.exec_form()[0] == "python"
