"""The deployment files refer only to metrics the keeper exports, and the configs load."""

from __future__ import annotations

import inspect
import json
import re

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics, MetricsServer
from bot.paths import ROOT
from bot.settings import KeeperSettings, load_settings

DEPLOY = ROOT / "config" / "deploy"


def exported_names() -> set[str]:
    metrics = Metrics()
    # touch the labelled series so they appear in the exposition
    metrics.asset_weight.labels("eth").set(0.4)
    metrics.asset_drift.labels("eth").set(0.0)
    metrics.rebalances.labels("executed").inc()
    metrics.skipped.labels("in_band").inc()
    metrics.trade_cost.labels("fees").set(1)
    metrics.impermanent_loss.labels("uniswap:USDC/WETH").set(0)
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        names.update(sample.name for sample in family.samples)
    return names


def test_required_metric_names_are_exported() -> None:
    names = exported_names()
    for required in (
        "rebalancer_portfolio_value",
        "rebalancer_asset_weight",
        "rebalancer_asset_drift",
        "rebalancer_rebalances_total",
        "rebalancer_rebalances_skipped_total",
        "rebalancer_cycle_duration_seconds_bucket",
        "rebalancer_gas_spent_wei_total",
        "rebalancer_trade_cost",
        "rebalancer_last_success_timestamp_seconds",
        "rebalancer_halted",
        "rebalancer_impermanent_loss_ratio",
    ):
        assert required in names, required
    for name in names:
        assert re.fullmatch(r"rebalancer_[a-z0-9_]+", name), name


@pytest.mark.parametrize("path", ["rebalancer-alerts.yml", "grafana-dashboard.json"])
def test_deploy_files_use_exported_metrics(path: str) -> None:
    text = (DEPLOY / path).read_text()
    if path.endswith(".json"):
        json.loads(text)
    used = set(re.findall(r"rebalancer_[a-z0-9_]+", text))
    used.discard("rebalancer_")
    exported = exported_names() | {"rebalancer_rpc_requests_total"}
    assert used, path
    assert used <= exported, used - exported


def test_fork_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REBALANCER_WALLET__ADDRESS", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    settings = load_settings(ROOT / "config" / "fork.toml")
    assert settings.chain.chain_id == 1
    assert settings.tokens["USDT"].approve_through_zero


def test_the_unit_sets_an_open_files_limit_well_above_what_the_keeper_holds() -> None:
    unit = (DEPLOY / "rebalancer.service").read_text()
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    (limit,) = re.findall(r"^LimitNOFILE=(\d+)$", service, re.MULTILINE)
    metrics = KeeperSettings().metrics_max_connections + MetricsServer.BACKLOG
    # aiohttp's per-session pool, for the public, the private and the relay clients
    rpc = 3 * inspect.signature(aiohttp.TCPConnector).parameters["limit"].default
    other = 128  # the SQLite journal, the dry-run fork's pipes, logs, the listening socket
    assert int(limit) > 10 * (metrics + rpc + other), limit
