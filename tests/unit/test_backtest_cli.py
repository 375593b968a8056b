"""`rebalancer backtest` as an operator meets it: the sweep really runs on a given Dask cluster,
a cluster that cannot be used is a one-line error (exit 2), bad dates too, --json is JSON on
stdout and nothing else, an undefined regime ratio reads n/a, and --help shows examples."""

from __future__ import annotations

import json
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.backtest import runner, sweep
from bot.cli import build_parser, main
from tests.keeper_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "config" / "local.toml")
# a short period that holds part of the March 2020 stress window, and one that holds none
STRESS = ["--from", "2020-02-15", "--to", "2020-04-15"]
CALM = ["--from", "2020-01-01", "--to", "2020-02-15"]
# a scheduler always serves HTTP (health, metrics); a second cluster finds 8787 taken and says so
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use")


class TaskLog:
    """A scheduler plugin recording every task that finished on a worker: (key, worker)."""

    name = "test-task-log"

    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start == "processing" and finish == "memory":
            self.done.append((str(key), str(kwargs.get("worker"))))

    def sweep_tasks(self) -> list[tuple[str, str]]:
        return [(key, worker) for key, worker in self.done if key.startswith("sweep_chunk-")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


@pytest.fixture
def task_log(cluster: Any) -> Iterator[TaskLog]:
    from distributed.diagnostics.plugin import SchedulerPlugin

    log = type("Log", (TaskLog, SchedulerPlugin), {})()
    cluster.scheduler.add_plugin(log)
    yield log
    cluster.scheduler.remove_plugin(name=log.name)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_the_sweep_runs_as_tasks_on_the_cluster_workers(
    cluster: Any, task_log: TaskLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = cluster.scheduler_address
    argv = ["backtest", "--config", CONFIG, *STRESS, "--out", str(tmp_path)]
    assert main([*argv, "--sweep", "--cluster", address, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ran_on = report["sweep"]["ran_on"]
    assert ran_on == {"kind": "dask", "scheduler": address, "workers": 2, "tasks": 2}
    done = task_log.sweep_tasks()
    # every chunk was a task that finished on one of the cluster's workers
    assert len(done) == ran_on["tasks"]
    assert {worker for _, worker in done} <= set(cluster.scheduler.workers)
    assert report["sweep"]["configurations_run"] == len(
        sweep.grid(runner.SWEEP_WIDTHS, runner.SWEEP_EVERY, partials=runner.SWEEP_PARTIALS)
    )
    # --cluster without --sweep runs the sweep there too, and says so
    assert main([*argv, "--cluster", address]) == 0
    out = capsys.readouterr().out
    assert f"as 2 tasks on the Dask cluster at {address} (2 workers)" in out
    assert len(task_log.sweep_tasks()) == 4


def test_a_small_sweep_still_goes_to_the_cluster(cluster: Any, task_log: TaskLog) -> None:
    prices = np.array([[100.0, 1.0], [200.0, 1.0], [100.0, 1.0]])
    market = sweep.Market(prices, np.array([0.5, 0.5]), np.array([1e30, 1e30]), fee=0.0, gas=0.0)
    config = [sweep.SweepConfig("threshold", "absolute", 0.1, 1, 1.0)]
    result = runner.run_sweep(market, config, cluster=cluster.scheduler_address)
    np.testing.assert_array_equal(result.final_value, sweep.run(market, config).final_value)
    assert len(task_log.sweep_tasks()) == 1


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """In a subprocess, as an operator runs it: nothing may print at interpreter exit either."""
    address = f"tcp://127.0.0.1:{closed_port()}"
    argv = ["backtest", "--config", CONFIG, *STRESS, "--sweep", "--cluster", address]
    began = time.monotonic()
    done = run_cli(*argv, "--out", str(tmp_path), cwd=ROOT, timeout=60)
    elapsed = time.monotonic() - began
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: --cluster {address}: no Dask scheduler answered")
    assert "Traceback" not in done.stderr
    assert elapsed < runner.CLUSTER_TIMEOUT + 10
    assert not (tmp_path / "report.json").exists()  # it failed before simulating anything


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1", "is not a Dask scheduler address (missing port number"),
        ("http://127.0.0.1:8786", "is not a Dask scheduler address (unknown address scheme"),
    ],
)
def test_a_malformed_address_is_one_line(
    address: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["backtest", "--config", CONFIG, *STRESS, "--cluster", address, "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.splitlines()) == 1


def test_a_scheduler_without_workers_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster

    monkeypatch.setattr(runner, "CLUSTER_TIMEOUT", 1.0)
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=0, processes=False, dashboard_address=None
    ) as empty:
        address = empty.scheduler_address
        argv = ["backtest", "--config", CONFIG, *STRESS, "--cluster", address]
        assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "the scheduler has no running worker after 1 s: start some" in err
    assert len(err.splitlines()) == 1


def test_without_distributed_the_error_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    argv = ["backtest", "--config", CONFIG, *STRESS, "--cluster", "tcp://127.0.0.1:8786"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[cluster]'" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (["--from", "2020-13-01"], "error: --from '2020-13-01' is not a date: use YYYY-MM-DD"),
        (["--to", "2020-02-30"], "error: --to '2020-02-30' is not a date: use YYYY-MM-DD"),
        (["--from", "March 1"], "error: --from 'March 1' is not a date: use YYYY-MM-DD"),
        (
            ["--from", "2020-05-01", "--to", "2020-04-01"],
            "error: --from 2020-05-01 is after --to 2020-04-01",
        ),
    ],
)
def test_bad_dates_are_one_line_and_exit_2(
    dates: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", "--config", CONFIG, *dates, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [captured.err.strip()]
    assert captured.err.startswith(message)
    assert "Traceback" not in captured.err


def test_json_is_all_of_stdout_and_an_undefined_ratio_is_null(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    argv = ["backtest", "--config", CONFIG, *CALM, "--sweep", "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # the whole of stdout parses
    assert [r["name"] for r in report["results"]] == [
        "hybrid (configured)",
        "buy and hold",
        "calendar every 30 days",
    ]
    assert report["report"]["html"] == str(out / "index.html")
    assert Path(report["report"]["json"]).is_file()
    ratio = report["sweep"]["stress_to_calm_event_ratio"]
    assert ratio["median"] is None
    assert ratio["note"] == "the period has no day in a stress window"
    assert report["sweep"]["ran_on"] == {"kind": "this process", "workers": 1}
    # the file keeps every configuration, with no rate where the regime is absent
    rows = json.loads((out / "report.json").read_text())["sweep"]["configurations"]
    assert len(rows) == report["sweep"]["configurations_run"]
    assert {row["events_per_30d_stress"] for row in rows} == {None}
    # the text summary says n/a, not 0.00x
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "n/a (the period has no day in a stress window)" in text
    assert "0.00x" not in text


def test_a_defined_ratio_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["backtest", "--config", CONFIG, *STRESS, "--sweep", "--out", str(tmp_path)]
    assert main([*argv, "--json"]) == 0
    ratio = json.loads(capsys.readouterr().out)["sweep"]["stress_to_calm_event_ratio"]
    assert ratio["median"] > 0
    assert ratio["note"] is None
    assert main(argv) == 0
    assert f"bring {ratio['median']:.2f}x the rebalancing events" in capsys.readouterr().out


def test_help_shows_examples_that_parse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["backtest", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert "implies --sweep" in text
    examples = text.split("examples:", 1)[1].replace("\\\n", " ")
    commands = [
        line.split("#")[0].split(">")[0].strip()
        for line in examples.splitlines()
        if line.strip().startswith("rebalancer backtest")
    ]
    assert len(commands) >= 3
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert args.config == "config/local.toml"
