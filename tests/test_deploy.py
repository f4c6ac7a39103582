"""The deployment files: compose validates, the Dockerfile lints clean and installs the way make does."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import root_path

ROOT = root_path()


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    return found


def test_compose_file_is_valid_and_has_the_services():
    out = subprocess.run([_tool("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    services = config["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in services[name], name
    assert {"pgdata", "redisdata", "miniodata"} <= set(config["volumes"])


def test_dockerfile_lints_clean():
    out = subprocess.run([_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_installs_with_make_like_a_laptop():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN make install\b", text, re.M)
    assert not re.search(r"^RUN .*pip install", text, re.M), "install through make, so the two cannot drift"


DLSERVE_SERVICES = ("migrate", "api", "worker", "worker-cpu")


def _compose_config(path: Path, **env: str) -> dict:
    out = subprocess.run([_tool("docker-compose"), "-f", str(path), "config"], capture_output=True, text=True,
                         cwd=path.parent, env={"PATH": "/usr/bin:/bin", **env})
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def _settings_variables() -> set[str]:
    from app.settings import Settings

    return {f"DLSERVE_{name.upper()}" for name in Settings.model_fields}


def _check_dlserve_service(name: str, service: dict) -> dict[str, str]:
    """A dlserve container: the project's image, a `dlserve` command the CLI has, variables the settings know
    with values they take, artifacts in a bucket and no disk shared with another container."""
    from typer.main import get_command

    from app.cli import cli
    from app.settings import Settings

    assert re.fullmatch(r"dlserve:(cpu|gpu)", service["image"]), (name, service["image"])
    command = service["command"]
    assert command[0] == "dlserve" and command[1] in get_command(cli).commands, (name, command)
    env = {k: str(v) for k, v in service["environment"].items()}
    unknown = {k for k in env if k.startswith("DLSERVE_")} - _settings_variables()
    assert not unknown, f"{name}: {unknown} are no settings (app/settings.py)"
    settings = Settings(_env_file=None, **{k.removeprefix("DLSERVE_").lower(): v for k, v in env.items()
                                           if k.startswith("DLSERVE_")})  # a value it refuses fails here
    assert settings.artifact_remote and settings.artifact_remote.startswith("s3://"), name
    # the S3-compatible server by a plain host name (minio:9000): the bucket in the path, as MinIO wants it
    assert settings.s3_addressing_style == "path", name
    assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} <= set(env), name
    assert not [v for v in service.get("volumes", []) if "/data" in str(v)], f"{name} shares a disk"
    return env


def test_compose_scales_the_api_behind_nginx_with_artifacts_in_minio():
    config = _compose_config(ROOT / "docker-compose.yml")
    services = config["services"]
    assert {"minio", "minio-init", "lb"} <= set(services)
    assert "artifacts" not in config["volumes"]  # no artifact volume for all to share
    envs = {name: _check_dlserve_service(name, services[name]) for name in DLSERVE_SERVICES}
    # the bucket the init service creates is the one every dlserve service stores in, with minio's keys
    init = " ".join(services["minio-init"]["command"])
    bucket = re.search(r"mc mb --ignore-existing store/([a-z0-9.-]+)", init).group(1)
    minio_env = services["minio"]["environment"]
    for name, env in envs.items():
        assert env["DLSERVE_ARTIFACT_ROOT"].split("/")[2] == bucket, name
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000", name
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == \
            (minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"]), name
        if name != "migrate":
            assert services[name]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name in ("worker", "worker-cpu"):  # long enough for a job to end before the worker is killed
        assert re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", str(services[name]["stop_grace_period"])), name
    # `--scale api=N`: no replica binds a host port; nginx does, and reaches `api` on the port it listens on
    assert "ports" not in services["api"] and services["lb"]["ports"]
    port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    mount = next(v for v in services["lb"]["volumes"] if str(v).endswith("/etc/nginx/nginx.conf:ro")
                 or (isinstance(v, dict) and v.get("target") == "/etc/nginx/nginx.conf"))
    assert "deploy/nginx.conf" in str(mount)
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(rf"^\s*server api:{port}\b", nginx, re.M), "the upstream is the api service's port"


def test_nginx_streams_uploads_and_events_and_takes_what_dlserve_takes():
    from app.settings import Settings

    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)([kmg]?);", nginx)
    limit = int(size.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[size.group(2)]
    assert limit == Settings.model_fields["max_upload_bytes"].default, "nginx would 413 what dlserve takes"
    assert re.search(r"^\s*proxy_request_buffering off;", nginx, re.M)
    events = nginx[nginx.index("/events$"):]
    assert "proxy_buffering off;" in events and re.search(r"proxy_read_timeout (\d+)s", events).group(1) >= "3600"


def test_the_worker_only_file_starts_a_worker_from_the_same_image_with_documented_variables():
    required = {"DLSERVE_DATABASE_URL": "postgresql+psycopg://u:p@db:5432/dlserve", "DLSERVE_BROKER_URL":
                "redis://q:6379/0", "AWS_ENDPOINT_URL": "http://s3:9000", "AWS_ACCESS_KEY_ID": "a",
                "AWS_SECRET_ACCESS_KEY": "b"}
    worker = _compose_config(ROOT / "deploy" / "worker-only.yml", **required)["services"]["worker"]
    env = _check_dlserve_service("worker-only", worker)
    assert worker["command"][:2] == ["dlserve", "worker"]
    main = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    assert worker["image"] == main["image"]
    assert env["DLSERVE_ARTIFACT_ROOT"] == "s3://dlserve/artifacts"  # docker-compose.yml's bucket, by default
    text = (ROOT / "deploy" / "worker-only.yml").read_text()
    for variable in required:  # each is written in the file's head, how to set it
        assert f"export {variable}" in text or f" {variable}=" in text, variable
    missing = subprocess.run([_tool("docker-compose"), "-f", str(ROOT / "deploy" / "worker-only.yml"), "config"],
                             capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode != 0 and "DLSERVE_DATABASE_URL" in missing.stderr  # refused, saying which
