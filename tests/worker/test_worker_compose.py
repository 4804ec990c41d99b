"""docker-compose.yml and the Dockerfile only run commands that exist in this project."""

from __future__ import annotations

import json
import re
import shlex
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest
import yaml

from app.cli import cli

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = sorted(name for name, svc in SERVICES.items() if "build" in svc)
NOT_YET = {"serve"}  # written by another issue; checked as soon as it exists


def _argv(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value)


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for name in OURS:
        svc = SERVICES[name]
        found.append((f"{name}.command", _argv(svc["command"])))
        test = svc.get("healthcheck", {}).get("test")
        if test and test[0] == "CMD":
            found.append((f"{name}.healthcheck", list(test[1:])))
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", (REPO / "Dockerfile").read_text(), re.M)
    assert cmd, "the Dockerfile has an exec-form CMD"
    found.append(("Dockerfile CMD", json.loads(cmd.group(1))))
    return found


def _check_click(argv: list[str]) -> None:
    command: click.Command = cli
    args = argv[1:]
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        if name in NOT_YET and name not in command.commands:
            pytest.skip(f"`propetl {name}` is not written yet")
        assert name in command.commands, f"`propetl ... {name}` does not exist"
        command = command.commands[name]
    assert not isinstance(command, click.Group), f"{argv} stops at a group"
    options = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for token in args:
        if token.startswith("--"):
            assert token.split("=", 1)[0] in options, f"{argv}: no option {token}"


@pytest.mark.parametrize(("where", "argv"), _commands(), ids=[w for w, _ in _commands()])
def test_every_command_exists(where, argv):
    if argv[0] == "propetl":
        [script] = entry_points(group="console_scripts", name="propetl")
        assert script.value == "app.cli:main" and callable(script.load())
        _check_click(argv)
    elif argv[0] == "python":
        assert argv[1] == "-c"
        compile(argv[2], where, "exec")
    else:
        pytest.fail(f"{where} runs {argv[0]!r}, which this project does not provide")


def test_deployment_shape():
    assert {"redis", "postgres", "migrate", "web", "worker"} <= set(SERVICES)
    for name in ("redis", "postgres", "web", "worker"):
        assert "healthcheck" in SERVICES[name], name
    for name in ("web", "worker"):
        deps = SERVICES[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    devices = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    env = SERVICES["worker"]["environment"]
    data_dir = env["PROPETL_DATA_DIR"]
    for name in ("web", "worker"):  # one shared artifacts volume, mounted where settings look
        mounts = {m.split(":")[1]: m.split(":")[0] for m in SERVICES[name]["volumes"]}
        assert mounts[data_dir] in COMPOSE["volumes"]
    assert env["PROPETL_BROKER_URL"].startswith("redis://redis:")
    assert env["PROPETL_DATABASE_URL"].startswith("postgresql+psycopg://")
    from app.settings import Settings

    assert Settings(
        **{k[8:].lower(): _unset(v) for k, v in env.items() if k.startswith("PROPETL_")}
    )


def _unset(value: str) -> str:
    """`value` as compose reads it when the variables it names are not set: `${X:-d}` -> d."""
    return re.sub(
        r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", str(value)
    )


def test_web_and_workers_read_the_same_login_settings():
    """A worker re-checks that a labelling job's owner may use its prototype with the web's
    access policy: both must read every login setting, from the same place."""
    from app.auth import _UserSettings
    from app.settings import Settings

    login = {"auth_enabled", "default_owner", "secret_key", *_UserSettings.model_fields} - {
        "token_ttl"
    }  # tokens are checked by the web server only
    assert login <= set(Settings.model_fields) | set(_UserSettings.model_fields)
    web, worker = (SERVICES[name]["environment"] for name in ("web", "worker"))
    for key in sorted(f"PROPETL_{name.upper()}" for name in login):
        assert key in web, f"{key} does not reach the web server"
        assert worker.get(key) == web[key], f"{key} differs between the web and the workers"
    assert {k: v for k, v in worker.items() if k.startswith("PROPETL_AUTH")} == {
        k: v for k, v in web.items() if k.startswith("PROPETL_AUTH")
    }
    # by default login is off, and turning it on in the shell or .env turns it on for both
    assert _unset(web["PROPETL_AUTH_ENABLED"]) == "false"
    assert re.fullmatch(r"\$\{PROPETL_AUTH_ENABLED(:-[^}]*)?\}", web["PROPETL_AUTH_ENABLED"])
