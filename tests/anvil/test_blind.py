"""A keeper that cannot see says so: /healthz turns 503 after keeper.max_consecutive_skips
cycles in a row skipped on data errors, and rebalancer_blind turns 1."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.journal import Journal
from bot.metrics import Metrics, MetricsServer
from bot.settings import Settings
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.keeper_helpers import keeper_settings, make_keeper


def without_pools_of(settings: Settings, symbol: str) -> Settings:
    pools = [p for p in settings.pools if symbol not in p.tokens]
    assert len(pools) < len(settings.pools)
    return settings.model_copy(update={"pools": pools})


async def healthz(server: MetricsServer) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{server.host}:{server.port}/healthz") as response,
    ):
        return response.status, await response.json()


@adversarial
async def test_a_token_with_no_pool_path_turns_healthz_503_after_the_limit(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)  # paper mode: nothing may move on chain
    base = keeper_settings(chain.url, tmp_path)
    settings = base.model_copy(
        update={"keeper": base.keeper.model_copy(update={"max_consecutive_skips": 3})}
    )
    metrics = Metrics()
    server = MetricsServer(metrics, "127.0.0.1", 0, 900.0)
    await server.start()
    try:
        journal = Journal(tmp_path / "j.sqlite")
        # a keeper that sees: skips inside the band never count
        async with make_keeper(settings, "paper", journal, metrics, chain.manifest) as keeper:
            results = [await keeper.cycle() for _ in range(5)]
        assert [r.status for r in results] == ["rebalanced"] + ["skipped"] * 4
        assert (await healthz(server))[0] == 200
        assert metrics.blind._value.get() == 0

        blind = without_pools_of(settings, "LINK")
        async with (
            faults.escaped(),
            make_keeper(blind, "paper", journal, metrics, chain.manifest) as keeper,
        ):
            statuses = []
            for _ in range(3):
                result = await keeper.cycle()
                statuses.append((result.status, result.skip))
                if len(statuses) < 3:
                    assert (await healthz(server))[0] == 200  # not yet
            assert statuses == [("skipped", "dataerror")] * 3
            status, body = await healthz(server)
            assert status == 503
            assert "blind: 3 cycles in a row skipped on data errors" in str(body["reason"])
            assert "token LINK has no pool path" in str(body["reason"])
            assert metrics.blind._value.get() == 1
            assert metrics.data_skips._value.get() == 3
            assert b"rebalancer_blind 1.0" in metrics.render()
        # the pool is back: the next cycle sees, and health returns
        async with make_keeper(settings, "paper", journal, metrics, chain.manifest) as keeper:
            assert (await keeper.cycle()).skip != "dataerror"
        assert (await healthz(server))[0] == 200
        assert metrics.blind._value.get() == 0
    finally:
        await server.stop()
    watch.finish(executions=0)
