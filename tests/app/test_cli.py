"""`dlserve keys --local` against the real database, `dlserve login` and where the client finds its server."""

import json
import os
import stat

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.cli import config as cli_config
from app.main import create_app
from tests.conftest import ADMIN_KEY, assert_problem
from tests.live_server import live_server


def run(settings, *args):
    env = {"DLSERVE_DATABASE_URL": settings.resolved_database_url, "DLSERVE_HOME": str(settings.home)}
    return CliRunner().invoke(cli, list(args), env=env)


def test_local_keys_create_prints_a_key_that_works_with_its_scopes(settings, tiny_onnx):
    result = run(settings, "keys", "create", "--local", "--scopes", "predict,train", "--name", "ci")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("dls_")
    with TestClient(create_app(settings)) as c:
        h = {"Authorization": f"Bearer {key}"}
        assert c.get("/v1/models", headers=h).status_code == 200
        r = c.post("/v1/models/m/versions", files={"file": ("m.onnx", tiny_onnx)}, data={"task": "fraud"}, headers=h)
        assert r.status_code == 201

    listed = run(settings, "keys", "list", "--local")
    assert "predict,train" in listed.stdout and "ci" in listed.stdout and key not in listed.stdout


def test_local_key_with_an_expiry_is_listed_with_it(settings):
    made = json.loads(run(settings, "keys", "create", "--local", "--scopes", "read", "--expires-in", "30d",
                          "--json").stdout)
    assert made["scopes"] == ["read"] and made["expires_at"].startswith("20")
    assert made["state"] == "active"


def test_keys_create_refuses_unknown_scopes(settings):
    result = run(settings, "keys", "create", "--local", "--scopes", "predict,root")
    assert result.exit_code == 2
    assert "read, predict, train, admin" in result.output


def test_local_keys_away_from_the_server_is_a_one_line_error(tmp_path):
    # (was a raw SQLAlchemy traceback)
    result = CliRunner().invoke(cli, ["keys", "list", "--local"],
                                env={"DLSERVE_HOME": str(tmp_path / "nothing"), "DLSERVE_DATABASE_URL": None})
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "no dlserve database" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "nothing").exists()  # and nothing was created there


def test_admin_key_from_settings_is_admin(settings):
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {settings.admin_key}"}).status_code == 200
        assert_problem(c.get("/v1/models", headers={"Authorization": f"Bearer {settings.admin_key}x"}), 401)


def test_version_and_help_state_the_precedence():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("dlserve ")
    helptext = " ".join(CliRunner().invoke(cli, ["--help"]).stdout.split())
    assert "flags, then the environment (DLSERVE_URL, DLSERVE_KEY, DLSERVE_PROFILE), then the profile" in helptext
    assert "--install-completion" in helptext and "--show-completion" in helptext


def test_login_writes_a_private_profile_and_flags_beat_env_beat_file(settings, tmp_path, monkeypatch):
    cfg = tmp_path / "xdg"
    env = {"XDG_CONFIG_HOME": str(cfg), "DLSERVE_URL": None, "DLSERVE_KEY": None, "DLSERVE_PROFILE": None,
           "DLSERVE_HOME": str(tmp_path / "nowhere")}
    with live_server(settings) as host:
        url = f"http://{host}"
        refused = CliRunner().invoke(cli, ["login", "--url", url, "--key", "dls_wrong_key"], env=env)
        assert refused.exit_code == 1 and "401" in refused.stderr and not (cfg / "dlserve").exists()

        result = CliRunner().invoke(cli, ["login", "--url", url], input=f"{ADMIN_KEY}\n", env=env)  # key prompted
        assert result.exit_code == 0, result.output
        path = cfg / "dlserve" / "config.toml"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert ADMIN_KEY not in result.output

        def models(*args, **more):
            return CliRunner().invoke(cli, ["models", *args], env={**env, **more})

        assert models().exit_code == 0  # from the file
        assert "cannot reach http://127.0.0.1:9" in models(DLSERVE_URL="http://127.0.0.1:9").stderr  # env > file
        assert models("--url", url, DLSERVE_URL="http://127.0.0.1:9").exit_code == 0  # flag > env
        assert "401" in models(DLSERVE_KEY="dls_x_y").stderr
        assert "401" in models("--key", "dls_x_y", DLSERVE_KEY=ADMIN_KEY).stderr

        # a second server's profile; the first profile's key is not sent to a URL it was not saved for
        other = CliRunner().invoke(cli, ["login", "--profile", "other", "--url", "http://127.0.0.1:9", "--key", "k",
                                         "--no-verify"], env=env)
        assert other.exit_code == 0, other.output
        assert "cannot reach http://127.0.0.1:9" in models("--profile", "other").stderr
        assert models(DLSERVE_PROFILE="default").exit_code == 0
        assert "no profile 'nope'" in models("--profile", "nope").stderr
        monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
        assert cli_config.resolve("http://127.0.0.1:9", None, None).key is None
        assert cli_config.resolve(url, None, None).key == ADMIN_KEY
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_shell_completion_offers_subcommands_and_options():
    def complete(words: str) -> list[str]:
        env = {"_DLSERVE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
        result = CliRunner().invoke(cli, [], env=env, prog_name="dlserve")
        return result.stdout.split()

    assert "jobs" in complete("dlserve jo")
    assert {"list", "show", "follow", "cancel", "metrics"} <= set(complete("dlserve jobs "))
    assert "--status" in complete("dlserve jobs list --st")
