"""docker-compose.yml is valid (``docker compose config -q``) wherever a docker CLI exists."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    """The compose CLI available here: the docker plugin, else Debian's docker-compose."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_is_valid() -> None:
    command = compose_command()
    if command is None:
        if shutil.which("docker") and os.environ.get("CI"):
            pytest.fail("a docker CLI exists but no compose: `make install` should add one")
        pytest.skip("no docker CLI on this machine")
    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_wires_the_worker_to_kafka_redis_and_prometheus() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"kafka", "redis", "worker", "prometheus", "grafana"} <= set(services)
    env = services["worker"]["environment"]
    assert env["CREDITLINE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["CREDITLINE_REDIS_URL"].startswith("redis://redis:")
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"worker:{env['CREDITLINE_WEB_PORT']}"]


def test_every_mounted_file_exists_and_grafana_is_provisioned() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
    prometheus_mounts = " ".join(doc["services"]["prometheus"]["volumes"])
    assert "alerts.yml" in prometheus_mounts
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/creditline.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_kafka_and_redis_keep_their_data_in_the_volumes() -> None:
    doc = _compose()
    kafka = doc["services"]["kafka"]
    mounts = dict(str(v).rsplit(":", 1) for v in kafka["volumes"])
    assert mounts["kafka-data"] == kafka["environment"]["KAFKA_LOG_DIRS"], (
        "apache/kafka writes /tmp/kraft-combined-logs unless KAFKA_LOG_DIRS names the volume"
    )
    # A fixed cluster id (a base64 UUID) so the formatted log dirs are reused on restart.
    cluster_id = kafka["environment"]["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    redis = doc["services"]["redis"]
    assert "redis-data:/data" in redis["volumes"]
    assert "--appendonly" in redis["command"]
    assert {"kafka-data", "redis-data"} <= set(doc["volumes"])


def test_every_service_that_others_wait_for_has_a_healthcheck() -> None:
    services = _compose()["services"]
    for name in ("kafka", "redis", "worker"):
        check = services[name].get("healthcheck")
        assert check and check["test"], f"{name} has no healthcheck"
    worker = services["worker"]
    port = worker["environment"]["CREDITLINE_WEB_PORT"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])
    for dependency in ("kafka", "redis"):
        assert worker["depends_on"][dependency]["condition"] == "service_healthy"
    assert services["prometheus"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_images_are_pinned_and_current() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if "image" not in service or "build" in service:
            continue
        image = service["image"]
        assert re.fullmatch(r"[a-z0-9/._-]+:v?[0-9]+\.[0-9]+\.[0-9]+", image), (
            f"{name}: pin a release, not {image}"
        )
    kafka_version = services["kafka"]["image"].split(":")[1]
    assert kafka_version == Settings.model_fields["kafka_version"].default, (
        "compose runs the Kafka release the local stack runs"
    )


def test_host_ports_do_not_collide_with_the_local_stack() -> None:
    """`creditline up` listens on 9092/9093 (Kafka), 6379 (Redis) and 6066 (a worker)."""
    settings = Settings()
    local = {6379, 6066, 9092, 9093, settings.web_port}
    published: list[int] = []
    for service in _compose()["services"].values():
        for port in service.get("ports", []):
            host_ip, host_port, _ = str(port).split(":")
            assert host_ip == "127.0.0.1"
            published.append(int(host_port))
    assert not set(published) & local, published
    assert len(published) == len(set(published))
    docs = (ROOT / "docs" / "compose.md").read_text()
    assert all(str(port) in docs for port in published)
