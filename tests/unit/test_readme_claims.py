"""What README.md says, checked: the commands and flags it shows, the config keys, metrics and
files it names, and the claims no other test covered (build stamps, the cost gate's formulas,
how sells meet buys, the weight tolerance, /healthz, the backtest's quoted figures)."""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import time
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import aiohttp
import pytest
from pydantic import BaseModel

from bot.backtest.runner import backtest
from bot.cli import build_parser
from bot.errors import ConfigError
from bot.metrics import Metrics, MetricsServer
from bot.paths import ROOT, prices_csv
from bot.planner import plan
from bot.portfolio import value_portfolio
from bot.prices import load_prices
from bot.settings import CostGate, Settings, load_settings
from bot.settings.load import is_model, unwrap_annotation
from bot.types import Swap
from strategies.cost_gate import benefit, check
from tests.synthetic import snapshot, with_strategy

README = (ROOT / "README.md").read_text()
TICKS = re.findall(r"`([^`\n]+)`", README)
LOOSE = {
    "min_trade_value": 0.0,
    "min_trade_fraction": 0.0,
    "deadband": 0.0,
    "cooldown_seconds": 0,
    "trigger": "threshold",
}
NOW = 1_700_000_000


# --- commands and flags ----------------------------------------------------------------------
def invocations() -> list[str]:
    """Every `rebalancer ...` the README shows: in code blocks (continuation lines joined,
    comments dropped, `a | b` split) and in inline code."""
    found: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", README, re.DOTALL):
        lines: list[str] = []
        for line in block.splitlines():
            if line.startswith(" ") and lines:
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
        for line in lines:
            command = line.split("#", 1)[0].strip().removeprefix(".venv/bin/")
            found += [part.strip() for part in command.split(" | ")]
    found += TICKS
    out = []
    for text in found:
        words = text.split()
        while words and "=" in words[0]:  # VAR=value rebalancer ...
            words.pop(0)
        if len(words) > 1 and words[0] == "rebalancer":
            out.append(" ".join(w for w in words if w != "&"))
    return out


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_and_flag_the_readme_shows_exists() -> None:
    shown = invocations()
    assert len(shown) > 20, shown
    for line in shown:
        parser = build_parser()
        words = line.split()[1:]
        while words and words[0] in subcommands(parser):
            parser = subcommands(parser)[words.pop(0)]
        if words and words[0] == "COMMAND":  # `rebalancer COMMAND --help`: any of them
            continue
        named = not words or not words[0].startswith("--")  # else a top-level flag: --help
        assert not (subcommands(parser) and named), f"{line}: names no command"
        options = parser._option_string_actions
        for flag, value in re.findall(r"(--[a-z-]+)(?:[ =]([^\s\]]+))?", " ".join(words)):
            assert flag in options, f"{line}: {flag} is not an option of {parser.prog}"
            choices = options[flag].choices
            if choices and value and "|" in value:
                assert set(value.split("|")) == set(choices), line
    # the journal options the README documents for each command
    for command in ("history", "resume"):
        options = subcommands(build_parser())[command]._option_string_actions
        assert {"--config", "--journal"} <= set(options), command


# --- config keys -------------------------------------------------------------------------------
def _models(tp: Any) -> list[type[BaseModel]]:
    tp = unwrap_annotation(tp)
    if get_origin(tp) in (dict, list):
        return _models(get_args(tp)[-1])
    if not is_model(tp):
        return []
    out = [tp]
    for field in tp.model_fields.values():
        out += _models(field.annotation)
    return out


MODELS = _models(Settings)
FIELDS = {name: model for model in MODELS for name in model.model_fields}
LITERALS = {
    str(value)
    for model in MODELS
    for field in model.model_fields.values()
    for tp in (unwrap_annotation(field.annotation), *get_args(unwrap_annotation(field.annotation)))
    if get_origin(tp) is Literal
    for value in get_args(tp)
}


def _resolve(path: list[str]) -> bool:
    """Whether `a.b.c` is a settings key, from the top (`keeper.journal`) or from a nested table
    (`cost_gate.volatility`); any name stands for a table's key (`tokens.X.notional`)."""
    starts = [Settings] + [
        unwrap_annotation(m.model_fields[path[0]].annotation)
        for m in MODELS
        if path[0] in m.model_fields
    ]
    for start in starts:
        tp: Any = start
        rest = path if start is Settings else path[1:]
        for part in rest:
            tp = unwrap_annotation(tp)
            if get_origin(tp) is dict:
                tp = get_args(tp)[1]
            elif is_model(tp) and part in tp.model_fields:
                tp = tp.model_fields[part].annotation
            else:
                break
        else:
            return True
    return False


def readme_keys() -> set[str]:
    keys = set()
    for tick in TICKS:
        table = re.match(r"\[([a-z_.]+)\] ([a-z_]+)", tick)
        word = f"{table[1]}.{table[2]}" if table else tick.split(" ")[0]
        if word.startswith(("eth_", "evm_", "anvil_", "rebalancer_", "bot.", "REBALANCER_")):
            continue
        dotted = re.fullmatch(r"[a-z_]+(\.(?:[a-z_]+|[A-Z]))+", word)  # X: any name
        if (dotted and word.split(".")[0] in FIELDS) or re.fullmatch(r"[a-z]+_[a-z0-9_]+", word):
            keys.add(word)
    return keys


def test_every_config_key_the_readme_names_exists_and_is_read() -> None:
    keys = readme_keys()
    assert {"keeper.journal", "execution.halt_on_shortfall", "max_fee_gwei"} <= keys
    # the journal's schema: its columns and statuses (bot/journal.py, or the bot/journal/ package)
    journal = "\n".join(
        path.read_text()
        for path in (ROOT / "bot").rglob("*.py")
        if path.parent.name == "journal" or path.name == "journal.py"
    )
    code = "\n".join(
        path.read_text()
        for folder in ("bot", "strategies")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "settings.py" and path.parent.name != "settings"
    )
    for key in sorted(keys):
        parts = key.split(".")
        if len(parts) == 1:
            if key not in FIELDS and (key in LITERALS or re.search(rf"\b{key}\b", journal)):
                continue  # a setting's value, or a journal column or status
            assert key in FIELDS, f"`{key}` is not a setting, a value, or a journal column"
        else:
            assert _resolve(parts), f"`{key}` is not a settings key"
        leaf = parts[-1] if parts[-1] in FIELDS else parts[-2]
        assert re.search(rf"\.{leaf}\b", code), f"`{key}`: nothing in bot/ or strategies/ reads it"


def test_the_weights_must_sum_to_one_within_1e_9(tmp_path: Path) -> None:
    text = (ROOT / "config" / "local.toml").read_text()
    assert "FOT = 0.005 }" in text
    for extra, ok in ((5e-10, True), (3e-9, False)):
        path = tmp_path / f"{extra}.toml"
        path.write_text(text.replace("FOT = 0.005 }", f"FOT = {0.005 + extra!r} }}"))
        if ok:
            load_settings(path)
        else:
            with pytest.raises(ConfigError, match=r"portfolio\.targets: weights sum to"):
                load_settings(path)


# --- metrics, alerts, files --------------------------------------------------------------------
def exported_metric_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


def test_every_metric_the_readme_names_is_exported() -> None:
    named = set(re.findall(r"\brebalancer_[a-z_]+[a-z]", README))
    assert {"rebalancer_blind", "rebalancer_halted", "rebalancer_gas_cap_hits_total"} <= named
    assert named <= exported_metric_names(), named - exported_metric_names()


def test_the_alert_rules_the_readme_lists() -> None:
    rules = (ROOT / "config" / "deploy" / "rebalancer-alerts.yml").read_text()
    alerts = dict(re.findall(r"- alert: (\w+)\n\s+expr: (.+)", rules))
    assert set(alerts) == {
        "RebalancerDown",
        "RebalancerHalted",
        "RebalancerStaleCycle",
        "RebalancerRepeatedFailures",
        "RebalancerGasCapHit",
        "RebalancerBlind",
    }
    assert alerts["RebalancerBlind"].strip() == "rebalancer_blind == 1"


def test_every_file_the_readme_names_exists() -> None:
    named = {
        tick
        for tick in TICKS
        if re.fullmatch(r"[\w.@-]+(/[\w.@*-]+)+/?", tick) and "NAME" not in tick
    }
    named |= set(re.findall(r"\]\((docs/[\w.-]+)\)", README))
    assert {"bot/planner.py", "config/deploy/rebalancer.service"} <= named
    for name in sorted(named):
        if "*" in name:
            assert list(ROOT.glob(name)), name
        elif not name.startswith("@"):  # npm packages: node_modules/@uniswap/...
            assert (ROOT / name).exists(), name
        else:
            assert (ROOT / "node_modules" / name).exists(), name


# --- the build: the first run installs, later runs reuse -------------------------------------
def test_make_setup_reinstalls_only_what_changed(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("no make")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    inputs = ("pyproject.toml", "package.json", "package-lock.json")
    stamps = (".venv/.installed", "node_modules/.installed")
    for name in (*inputs, *stamps):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    old, new = time.time() - 100, time.time() - 50
    for name in inputs:
        os.utime(tmp_path / name, (old, old))
    for name in stamps:
        os.utime(tmp_path / name, (new, new))

    # run as its own make, not as a child of `make test` (whose flags would print directories)
    clean = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}

    def planned() -> str:
        done = subprocess.run(
            ["make", "--no-print-directory", "-n", "setup"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            env=clean,
        )
        return done.stdout

    # both stamps newer than their inputs: nothing to do
    assert "pip install" not in planned()
    assert "npm install" not in planned()
    os.utime(tmp_path / "pyproject.toml")
    assert "pip install" in planned()
    assert "npm install" not in planned()
    os.utime(tmp_path / "pyproject.toml", (old, old))
    os.utime(tmp_path / "package-lock.json")
    assert "npm install" in planned()
    assert "pip install" not in planned()


def test_python_3_11_is_the_floor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"


# --- the cost gate's two benefit models --------------------------------------------------------
def test_the_cost_gate_formulas() -> None:
    settings = with_strategy(**LOOSE)
    view = value_portfolio(snapshot(), settings)  # $1,000 of each token: far off the targets
    drift = {u.unit: u.weight - u.target for u in view.units}
    assert sum(abs(d) for d in drift.values()) > 0.3
    value = view.total_value
    gate = CostGate(z_score=2.0, horizon_days=73, default_volatility=0.8, volatility={"usd": 0.02})
    vols = {unit: 0.02 if unit == "usd" else 0.8 for unit in drift}

    def var(share: float) -> float:
        spread = math.sqrt(sum((share * d * vols[u]) ** 2 for u, d in drift.items()))
        return value * 2.0 * spread * math.sqrt(73 / 365)

    half_way = {u.unit: u.target + drift[u.unit] / 2 for u in view.units}
    on_target = {u.unit: u.target for u in view.units}
    assert benefit(view, on_target, gate) == pytest.approx(var(1.0), rel=1e-12)
    assert benefit(view, half_way, gate) == pytest.approx(var(1.0) - var(0.5), rel=1e-12)

    linear = CostGate(benefit_model="linear", value_per_drift=0.01)
    removed = sum(abs(d) for d in drift.values()) / 2
    assert benefit(view, half_way, linear) == pytest.approx(value * 0.01 * removed, rel=1e-12)

    gain = benefit(view, on_target, gate)
    ratio = CostGate(z_score=2.0, horizon_days=73, volatility={"usd": 0.02}, min_benefit_ratio=2)
    assert check(view, on_target, gain / 2, ratio).passed  # benefit = 2 x cost: through
    assert not check(view, on_target, gain / 2 * 1.001, ratio).passed


# --- the planner: sells meet buys, one venue makes one call --------------------------------------
def test_a_buy_takes_a_sell_that_shares_its_pool_first() -> None:
    settings = with_strategy(**LOOSE)
    snap = snapshot()
    view = value_portfolio(snap, settings)
    # LINK is the larger sell, but only WETH has a pool with WBTC
    proposed = plan(snap, view, settings, {"eth": -200.0, "LINK": -400.0, "WBTC": 200.0}, NOW)
    (swap,) = proposed.actions
    assert isinstance(swap, Swap)
    assert swap.path == ("WETH", "WBTC")


def test_a_route_on_one_venue_is_one_multi_hop_call() -> None:
    settings = with_strategy(**LOOSE)
    snap = snapshot()
    view = value_portfolio(snap, settings)
    proposed = plan(snap, view, settings, {"LINK": -100.0, "WBTC": 100.0}, NOW)
    (swap,) = proposed.actions  # no LINK/WBTC pool: through the WETH hub, in one call
    assert isinstance(swap, Swap)
    assert swap.path == ("LINK", "WETH", "WBTC")
    assert {key.split(":")[0] for key in swap.pools} == {swap.venue}
    assert len(swap.pools) == 2


# --- /healthz ----------------------------------------------------------------------------------
async def test_healthz_is_503_when_halted_or_stale() -> None:
    metrics = Metrics()
    server = MetricsServer(metrics, "127.0.0.1", 0, max_age_seconds=30)
    await server.start()

    async def status() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{server.port}/healthz") as response,
        ):
            return response.status, str((await response.json()).get("reason"))

    try:
        metrics.last_success.set(time.time())
        assert (await status())[0] == 200
        metrics.last_success.set(time.time() - 31)
        code, reason = await status()
        assert (code, reason) == (503, "last success 31s ago")
        metrics.last_success.set(time.time())
        metrics.halted.set(1)
        assert await status() == (503, "halted")
    finally:
        await server.stop()


# --- the backtest figures the README quotes ----------------------------------------------------
def test_the_backtest_figures_in_the_readme(tmp_path: Path) -> None:
    settings = load_settings(ROOT / "config" / "local.toml")
    report = backtest(
        settings, load_prices(prices_csv()), None, None, tmp_path, with_sweep=True, workers=1
    )
    results = {r["name"]: r for r in report["results"]}
    configured, hold = results["hybrid (configured)"], results["buy and hold"]
    calendar = results["calendar every 30 days"]
    assert configured["from"] == "2020-01-01"
    assert settings.backtest.initial_value == 1_000_000
    assert round(configured["final_value"] / 1e6, 2) == 12.54
    assert round(hold["final_value"] / 1e6, 2) == 12.86
    assert (round(configured["volatility"], 3), round(hold["volatility"], 3)) == (0.497, 0.694)
    assert (round(configured["max_drawdown"], 3), round(hold["max_drawdown"], 3)) == (0.626, 0.776)
    assert (round(configured["tracking_error"], 3), round(hold["tracking_error"], 3)) == (
        0.015,
        0.186,
    )
    assert configured["rebalances"] == 52
    assert round(sum(configured["costs"].values())) == 132_750
    assert calendar["rebalances"] > configured["rebalances"]
    assert abs(calendar["final_value"] / configured["final_value"] - 1) < 0.02
    rates = configured["events_per_30_days"]
    assert round(rates["stress"] / rates["calm"], 1) == 2.2
    ratio = report["sweep"]["stress_to_calm_event_ratio"]
    assert ratio["configurations_compared"] == 185
    assert round(ratio["median"], 1) == 1.5
    assert [round(q, 1) for q in ratio["quartiles"]] == [1.0, 2.4]
    assert date.fromisoformat(configured["to"]) > date(2025, 1, 1)
    # the 3-5x claim holds for 29 of them, all rebalancing rarely; the most active see ~1x
    compared = [
        c
        for c in report["sweep"]["configurations"]
        if c["trigger"] != "calendar"
        and c["events_per_30d_calm"]
        and c["events_per_30d_stress"] is not None
    ]
    assert len(compared) == 185
    ratios = {id(c): c["events_per_30d_stress"] / c["events_per_30d_calm"] for c in compared}
    three_x = [c for c in compared if ratios[id(c)] >= 3]
    assert len(three_x) == 29
    assert max(c["rebalances"] for c in three_x) <= 77
    most_active = sorted(compared, key=lambda c: -c["rebalances"])[:10]
    assert max(ratios[id(c)] for c in most_active) < 1.3
    # the heat map: wide bands pay off (hybrid trigger, either kind of band)
    for kind in ("absolute", "relative"):
        hybrid = [
            c
            for c in report["sweep"]["configurations"]
            if c["trigger"] == "hybrid" and c["band"] == kind
        ]
        wide = statistics.median(c["final_value"] for c in hybrid if c["width"] >= 0.15)
        narrow = statistics.median(c["final_value"] for c in hybrid if c["width"] <= 0.03)
        assert wide > narrow * 1.05, kind


@pytest.mark.parametrize(
    ("start", "end", "stress"),
    [(date(2020, 3, 1), date(2020, 3, 31), True), (date(2021, 1, 1), date(2021, 1, 31), False)],
)
def test_backtest_gas_is_stress_gas_inside_the_stress_windows(
    tmp_path: Path, start: date, end: date, stress: bool
) -> None:
    base = load_settings(ROOT / "config" / "local.toml")
    settings = with_strategy(base, trigger="threshold", band_width=0.02, cooldown_seconds=0)
    # the price that should not apply is absurd; the one that applies is free
    gas = (
        {"gas_gwei": 10_000.0, "stress_gas_gwei": 0.0}
        if stress
        else {
            "gas_gwei": 0.0,
            "stress_gas_gwei": 10_000.0,
        }
    )
    settings = settings.model_copy(update={"backtest": settings.backtest.model_copy(update=gas)})
    report = backtest(settings, load_prices(prices_csv()), start, end, tmp_path / "out")
    configured = report["results"][0]
    assert configured["rebalances"] > 0
    assert configured["costs"]["gas"] == 0
