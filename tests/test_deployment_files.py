"""The root deployment files: prefect.yaml deploys our flows; ray-cluster.yaml passes Ray's own validation."""

import importlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def entrypoint_flow(entrypoint: str):
    path, attribute = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), attribute)


def test_prefect_yaml_deploys_the_export_flow_and_a_minutely_poller():
    config = load("prefect.yaml")
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {"export", "retry-delivery", "poll-pending-exports", "reconcile-exports"}
    assert entrypoint_flow(deployments["reconcile-exports"]["entrypoint"]).name == "reconcile-exports"
    assert deployments["reconcile-exports"]["schedules"] == [{"interval": 120}]
    export_flow = entrypoint_flow(deployments["export"]["entrypoint"])
    retry = entrypoint_flow(deployments["retry-delivery"]["entrypoint"])
    from models.settings import Settings

    # The API starts these by their full names, flow/deployment, as the settings name them.
    assert f"{export_flow.name}/export" == Settings().export_deployment
    assert f"{retry.name}/retry-delivery" == Settings().retry_delivery_deployment
    poller = entrypoint_flow(deployments["poll-pending-exports"]["entrypoint"])
    assert (export_flow.name, poller.name) == ("export", "poll-pending-exports")
    assert deployments["poll-pending-exports"]["schedules"] == [{"interval": 60}]
    # The poller starts runs of the export deployment by its full name, flow/deployment.
    assert deployments["poll-pending-exports"]["parameters"]["deployment"] == f"{export_flow.name}/export"
    assert {d["work_pool"]["name"] for d in deployments.values()} == {"geoship"}
    # The scheduled passes never overlap themselves: a pass that finds the last one still running is cancelled.
    for name in ("poll-pending-exports", "reconcile-exports"):
        assert deployments[name]["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}


def test_ray_cluster_yaml_is_valid_for_the_cluster_launcher(monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load("ray-cluster.yaml")
    validate_config(prepare_config(config))
    assert config["provider"]["type"] == "aws" and config["head_node_type"] in config["available_node_types"]
    assert any("pip install" in c and "/opt/geoship" in c for c in config["setup_commands"])
    broken = load("ray-cluster.yaml")
    broken["head_node_type"] = "missing"
    with pytest.raises(ValueError):
        validate_config(prepare_config(broken))
