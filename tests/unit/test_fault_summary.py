"""The fault summary adds up what adversarial tests measured; silence or failure is unmeasured."""

from __future__ import annotations

from typing import Literal

import pytest

from tests.faults import PROPERTY, summarize

pytest_plugins = ["pytester"]

INNER_TESTS = """
import pytest
from tests.faults import adversarial

@adversarial
def test_passed_but_silent(faults):
    pass

@adversarial
def test_measured_clean(faults):
    faults.report_chain(loss_wei=0, transactions=2, duplicates=0)
    with faults.escaped(ValueError):
        raise ValueError("the expected refusal")

@adversarial
def test_measured_loss_and_duplicate(faults):
    faults.report_chain(loss_wei=7, transactions=3, duplicates=1)
    with faults.escaped():
        pass

@adversarial
def test_fuzzed_parser(faults):
    faults.not_applicable("loss", "duplicates", why="no chain")
    for _ in range(3):
        with faults.fuzz(KeyError):
            {}["missing"]

@adversarial
def test_an_escape_fails_the_test(faults):
    faults.report_chain(loss_wei=0, transactions=0, duplicates=0)
    with faults.escaped(KeyError):
        raise ZeroDivisionError("not a refusal")

@adversarial
def test_reported_then_failed(faults):
    faults.report_chain(loss_wei=0, transactions=0, duplicates=0)
    with faults.escaped():
        pass
    assert False

@adversarial
def test_a_figure_missing(faults):
    faults.report_chain(loss_wei=0, transactions=0, duplicates=0)

@adversarial
@pytest.mark.skip(reason="not run")
def test_skipped(faults):
    pass

def test_not_adversarial(faults):
    faults.report_chain(loss_wei=10**18, transactions=9, duplicates=9)
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A test run of its own, with the project's fixture and summary hook."""
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "markers =\n    adversarial: a fault is injected\n"
    )
    pytester.makeconftest(
        "from tests.conftest import pytest_terminal_summary\nfrom tests.faults import faults\n"
    )
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester


def test_observations_travel_through_the_reports_and_add_up(inner: pytest.Pytester) -> None:
    run = inner.inline_run()
    summary = summarize(run.getreports("pytest_runtest_logreport"))
    assert summary is not None
    assert summary.injected == 7  # the skipped and the unmarked tests are not faults
    assert summary.skipped == 1
    assert summary.measured == 3
    assert (summary.loss_wei, summary.loss_tests, summary.loss_not_applicable) == (7, 2, 1)
    assert (summary.duplicates, summary.duplicate_tests, summary.transactions) == (1, 2, 5)
    assert (summary.escaped, summary.escaped_tests, summary.escaped_in_failed) == (0, 3, 1)
    assert summary.fuzzed == 3
    assert {name.split("::")[-1]: why for name, why in summary.unmeasured} == {
        "test_passed_but_silent": "passed, reported nothing",
        "test_an_escape_fails_the_test": "failed",
        "test_reported_then_failed": "failed",
        "test_a_figure_missing": "passed, no figure for escaped",
    }


def test_the_terminal_summary_prints_the_measured_figures(inner: pytest.Pytester) -> None:
    result = inner.runpytest()
    result.assert_outcomes(passed=6, failed=2, skipped=1)
    text = result.stdout.str()
    assert (
        "faults injected: 7 tests (3 fuzzed inputs among them); measured: 3; "
        "funds lost beyond slippage bounds: 7 wei-equivalent over 2 tests "
        "(not applicable in 1); duplicate executions: 1 (counted on chain over 2 tests, "
        "5 keeper transactions, not applicable in 1); exceptions escaped: 0 over 3 tests "
        "(+1 in failed tests); unmeasured: 4 (" in text
    )
    assert "test_inner.py::test_passed_but_silent [passed, reported nothing]" in text
    assert "test_inner.py::test_measured_loss_and_duplicate: lost (wei-equivalent) 7" in text


def report(
    outcome: Literal["passed", "failed", "skipped"],
    properties: list[tuple[str, object]],
    when: Literal["setup", "call", "teardown"] = "call",
) -> pytest.TestReport:
    return pytest.TestReport(
        "test_x.py::test_fault",
        ("test_x.py", 1, "test_fault"),
        {"adversarial": 1},
        outcome,
        None,
        when,
        user_properties=properties,
    )


def measured(loss: int | None, duplicates: int | None, escaped: int | None) -> dict[str, object]:
    return {
        "loss_wei": loss,
        "unpriced": {},
        "duplicates": duplicates,
        "transactions": 1,
        "gas_wei": 0,
        "escaped": escaped,
        "escapes": [],
        "fuzzed": 0,
        "not_applicable": {},
        "unfinished": 0,
        "notes": [],
    }


def test_a_passed_test_that_reported_nothing_is_unmeasured_never_zero() -> None:
    summary = summarize([report("passed", [])])
    assert summary is not None
    assert summary.measured == 0
    assert summary.loss_tests == summary.duplicate_tests == summary.escaped_tests == 0
    assert summary.unmeasured == [("test_x.py::test_fault", "passed, reported nothing")]
    assert "unmeasured: 1 (test_x.py::test_fault [passed, reported nothing])" in summary.line()


def test_a_reported_loss_and_duplicate_make_the_figures_nonzero() -> None:
    summary = summarize([report("passed", [(PROPERTY, measured(12, 2, 0))])])
    assert summary is not None
    assert (summary.measured, summary.loss_wei, summary.duplicates) == (1, 12, 2)
    assert "funds lost beyond slippage bounds: 12 wei-equivalent over 1 tests" in summary.line()
    assert "duplicate executions: 2 (counted on chain" in summary.line()


def test_a_failed_test_is_unmeasured_even_when_its_figures_were_zero() -> None:
    phases = [
        report("passed", [(PROPERTY, measured(0, 0, 0))]),
        report("failed", [(PROPERTY, measured(0, 0, 0))], when="teardown"),
    ]
    summary = summarize(phases)
    assert summary is not None
    assert summary.measured == 0
    assert summary.unmeasured == [("test_x.py::test_fault", "failed")]


def test_a_watch_never_finished_leaves_the_test_unmeasured() -> None:
    seen = measured(0, 0, 0) | {"unfinished": 1}
    summary = summarize([report("passed", [(PROPERTY, seen)])])
    assert summary is not None
    assert summary.unmeasured == [
        ("test_x.py::test_fault", "passed, no figure for 1 chain watch(es) never finished")
    ]


def test_no_adversarial_test_no_summary() -> None:
    assert summarize([]) is None
