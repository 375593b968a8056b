"""The command line as an operator meets it: which journal, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.errors import ConfigError
from bot.journal import Journal
from bot.metrics import Metrics
from bot.paths import ROOT
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.keeper_helpers import (
    LOCAL_CONFIG,
    config_file,
    keeper_command,
    keeper_settings,
    make_keeper,
    run_cli,
    run_command,
)


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_resume_and_history_use_the_configs_journal_from_any_directory(tmp_path: Path) -> None:
    config = config_file(tmp_path / "etc", journal="state/journal.sqlite")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # nothing there yet: refused, and no empty journal is created by mistake
    one_line_error(run_cli("resume", "--config", str(config), cwd=elsewhere), "no journal at")
    one_line_error(run_cli("history", "--config", str(config), cwd=elsewhere), "no journal at")
    assert not (tmp_path / "etc" / "state").exists()
    assert list(elsewhere.iterdir()) == []

    (tmp_path / "etc" / "state").mkdir()
    journal = Journal(tmp_path / "etc" / "state" / "journal.sqlite")
    journal.set_state("halted", "3 consecutive failed cycles")
    journal.close()
    resumed = run_cli("resume", "--config", str(config), cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed; it had halted because: 3 consecutive failed cycles" in resumed.stdout
    assert Journal(tmp_path / "etc" / "state" / "journal.sqlite").get_state("halted") is None
    history = run_cli("history", "--config", str(config), "--json", cwd=elsewhere)
    assert history.returncode == 0
    assert json.loads(history.stdout) == []
    # --journal still wins over the config
    one_line_error(
        run_cli("history", "--config", str(config), "--journal", "missing.sqlite", cwd=elsewhere),
        "no journal at missing.sqlite",
    )
    one_line_error(run_cli("resume", cwd=elsewhere), "pass --config FILE")


def test_history_csv_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    Journal(tmp_path / "j.sqlite").close()
    done = run_cli("history", "--journal", str(tmp_path / "j.sqlite"), "--csv", "nope/out.csv")
    one_line_error(done, "nope/out.csv", "folder does not exist")


def test_history_json_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    for n in range(400):  # well past a pipe's buffer
        journal.record_rebalance(
            cycle_id=0,
            time=n,
            block=n,
            mode="paper",
            status="paper",
            reason="x" * 200,
            pre_weights={},
            post_weights={},
            trades=[],
            quoted={},
            value_before=1.0,
            turnover=0.0,
            fee_cost=0.0,
            impact_cost=0.0,
            gas_cost=0.0,
        )
    journal.close()
    done = subprocess.run(  # noqa: S602
        f"{sys.executable} -m bot.cli history --journal {tmp_path / 'j.sqlite'} --json | head -n 2",
        shell=True,  # a fixed command line: the pipe is the point
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.stdout.splitlines() == ["[", "  {"]
    assert done.stderr == ""  # no traceback, no "Exception ignored"


def test_a_taken_metrics_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            "run",
            "--config",
            str(LOCAL_CONFIG),
            "--mode",
            "paper",
            "--journal",
            str(tmp_path / "j.sqlite"),
            "--metrics-port",
            str(port),
            "--max-cycles",
            "1",
        )
    one_line_error(done, f"127.0.0.1:{port}", "--metrics-port")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("rebalancer ")
    assert out.split()[1][0].isdigit()


def test_run_json_prints_one_object_per_cycle(chain: Chain, tmp_path: Path) -> None:
    done = run_command(keeper_command(chain, tmp_path / "j.sqlite", 2, "--json", mode="paper"))
    assert done.returncode == 0, done.stderr
    cycles = [json.loads(line) for line in done.stdout.splitlines()]
    assert [c["mode"] for c in cycles] == ["paper", "paper"]
    assert {c["status"] for c in cycles} <= {"rebalanced", "skipped"}
    assert all(c["block"] == chain.w3.eth.block_number for c in cycles)
    assert "stopped after 2 cycles" in done.stderr


@adversarial
async def test_one_keeper_per_journal(chain: Chain, tmp_path: Path, faults: Faults) -> None:
    watch = faults.watch(chain)  # two paper keepers and a refused deployment: nothing on chain
    settings = keeper_settings(chain.url, tmp_path)
    path = tmp_path / "j.sqlite"
    first = Journal(path)
    async with make_keeper(settings, "paper", first, Metrics(), chain.manifest) as keeper:
        await keeper.cycle()
        second = Journal(path)
        with pytest.raises(ConfigError, match="in use by another keeper"):
            async with make_keeper(settings, "paper", second, Metrics(), chain.manifest):
                pytest.fail("a second keeper started on the same journal")
        # a separate process is refused the same way, in one line
        started = run_command(keeper_command(chain, path, 1, mode="paper"))
        one_line_error(started, "in use by another keeper", f"pid {os.getpid()}")
        faults.process(started.stderr)
        deployed = run_cli(
            "deploy-executor",
            "--config",
            str(LOCAL_CONFIG),
            "--rpc-url",
            chain.url,
            "--journal",
            str(path),
            key=chain.manifest["keeper"]["private_key"],
        )
        one_line_error(deployed, "in use by another keeper")
        faults.process(deployed.stderr)
        # readers still read while it runs
        history = run_cli("history", "--journal", str(path), "--json")
        assert history.returncode == 0
        assert len(json.loads(history.stdout)) == 1
    # released on exit: the next keeper starts
    async with make_keeper(settings, "paper", second, Metrics(), chain.manifest) as keeper:
        assert (await keeper.cycle()).status in {"skipped", "rebalanced"}
    watch.finish(executions=0)


async def test_a_rebalance_points_at_its_cycle(chain: Chain, tmp_path: Path) -> None:
    settings = keeper_settings(chain.url, tmp_path)
    journal = Journal(tmp_path / "j.sqlite")
    async with make_keeper(settings, "paper", journal, Metrics(), chain.manifest) as keeper:
        first = await keeper.cycle()
        second = await keeper.cycle()
    assert (first.status, second.status) == ("rebalanced", "skipped")
    (row,) = journal.rebalances()
    cycles = {c.id: c for c in journal.cycles()}
    assert len(cycles) == 2
    assert cycles[row.cycle_id].status == "rebalanced"
    assert row.cycle_id == min(cycles)
