"""docker-compose.yml and the nginx template, checked without a container engine: every environment
name a Videoflix container is given is one the settings understand, and the scaled profile holds together."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from core.config import ENVIRONMENT, load_settings
from tests.nginx import NGINX, TEMPLATE, check_config, free_port, placeholders, render

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: spec for name, spec in SERVICES.items() if spec.get("build") == "."}
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?]([^}]*))?\}")


def resolved(value: object) -> str:
    """A compose value with ${NAME:-default} filled from its default (or a stand-in for required ones)."""
    return INTERPOLATION.sub(
        lambda m: m.group(2) if m.group(0).find(":-") > 0 else f"stand-in-{m.group(1)}", str(value)
    )


def test_every_environment_name_a_videoflix_container_gets_is_a_known_setting():
    assert set(OURS) == {"app", "api", "transcode"}
    for name, spec in OURS.items():
        unknown = set(spec.get("environment", {})) - set(ENVIRONMENT)
        assert not unknown, f"service {name} sets {sorted(unknown)}, which core/config.py does not read"


def test_the_scaled_services_start_with_settings_that_validate():
    for name in ("api", "transcode"):
        environ = {key: resolved(value) for key, value in SERVICES[name]["environment"].items()}
        settings = load_settings(ROOT / "config.yaml", environ=environ)
        assert settings.server.role == "all"  # the role comes from the command line
        assert settings.media.storage == "s3" and settings.media.edge == "s3"
        assert settings.s3.bucket and settings.s3.endpoint_url == "http://minio:9000"
        assert "replicaSet=rs0" in settings.database.uri


def test_the_scaled_profile_has_its_topology_and_api_and_transcode_can_be_scaled():
    scaled = {name for name, spec in SERVICES.items() if "scaled" in spec.get("profiles", [])}
    assert scaled == {"mongo-rs", "minio", "minio-init", "api", "transcode", "nginx"}
    assert "profiles" not in SERVICES["app"] and "profiles" not in SERVICES["mongodb"]  # the one box stays
    for name, role in (("api", "api"), ("transcode", "transcode")):
        spec = SERVICES[name]
        assert spec["command"][-2:] == ["--role", role]
        assert "ports" not in spec and "container_name" not in spec, f"{name} could not run --scale N"
    for name, spec in SERVICES.items():
        for dependency in spec.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
    assert "--replSet" in SERVICES["mongo-rs"]["command"]
    assert "rs.initiate" in " ".join(SERVICES["mongo-rs"]["healthcheck"]["test"])
    assert "mc mb" in SERVICES["minio-init"]["entrypoint"][-1]
    for volume in [v.split(":")[0] for spec in SERVICES.values() for v in spec.get("volumes", [])]:
        assert volume in COMPOSE["volumes"] or (ROOT / volume).exists(), volume


def test_nginx_gets_exactly_the_names_its_template_needs_and_the_same_edge_secret_as_the_api():
    nginx = SERVICES["nginx"]
    mounted = [v for v in nginx["volumes"] if v.startswith("./deploy/nginx/")]
    assert mounted and (ROOT / mounted[0].split(":")[0]).resolve() == TEMPLATE
    assert mounted[0].split(":")[1].startswith("/etc/nginx/templates/")
    assert set(nginx["environment"]) == placeholders(TEMPLATE.read_text())
    assert nginx["environment"]["EDGE_SECRET"] == SERVICES["api"]["environment"]["EDGE_SECRET"]
    assert nginx["environment"]["API_UPSTREAM"] == "api:8000"


def test_the_scaled_api_trusts_exactly_nginx_so_rate_limits_key_on_the_client():
    address = resolved(SERVICES["nginx"]["networks"]["default"]["ipv4_address"])
    [pool] = COMPOSE["networks"]["default"]["ipam"]["config"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(resolved(pool["subnet"]))
    for name in ("api", "transcode"):
        environ = {key: resolved(value) for key, value in SERVICES[name]["environment"].items()}
        settings = load_settings(ROOT / "config.yaml", environ=environ)
        assert settings.server.trusted_proxies == [address], name
    # nginx appends the peer it saw: the api walks the list from the right, past trusted hops only, so
    # an X-Forwarded-For a client made up itself is never the key
    assert "X-Forwarded-For $proxy_add_x_forwarded_for;" in TEMPLATE.read_text()
    # and nothing but nginx can reach the api replicas to claim one
    assert "ports" not in SERVICES["api"]


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")
def test_nginx_accepts_the_rendered_configuration(tmp_path):
    values = {
        "EDGE_SECRET": "secret",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "API_UPSTREAM": "127.0.0.1:8000",
        "NGINX_LISTEN": f"127.0.0.1:{free_port()}",
        "NGINX_CACHE_DIR": str(tmp_path / "cache"),
    }
    checked = check_config(tmp_path / "nginx", values)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_the_template_fails_loudly_when_a_name_is_missing():
    with pytest.raises(KeyError, match="EDGE_SECRET"):
        render({"MEDIA_ROOT": "/m", "API_UPSTREAM": "a:1", "NGINX_LISTEN": "80", "NGINX_CACHE_DIR": "/c"})


def test_the_image_copies_every_part_the_server_reads_at_run_time():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {
        part.rstrip("/")
        for line in dockerfile.splitlines()
        if line.startswith("COPY")
        for part in line.split()[2:-1]
    }
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    needed = packages | {"server.py", "config.yaml", "pyproject.toml", "templates"}
    if (ROOT / "web").is_dir():
        needed.add("web")
    assert needed <= copied, f"the image lacks {sorted(needed - copied)}"
