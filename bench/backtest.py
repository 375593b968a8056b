"""The sweep engine's speed: configuration-days per second, vectorized against a plain
per-configuration Python loop over the same inputs, in one run; and a 1,000-configuration sweep
over the full dataset. The loop is timed on a sample of the configurations (it is the slow one)
and its rate is per configuration-day, so the two compare directly. Last line: `speedup <x>`.

    .venv/bin/python bench/backtest.py [--configs 1000] [--loop-sample 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.backtest import sweep
from bot.backtest.runner import run_sweep
from bot.paths import prices_csv
from bot.prices import load_prices, price_matrix


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--loop-sample", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    days, rows = price_matrix(load_prices(prices_csv()), ["ETH", "WBTC", "USDC", "LINK"])
    market = sweep.Market(
        np.array(rows), np.array([0.4, 0.2, 0.3, 0.1]), np.array([20e6, 10e6, 30e6, 4e6])
    )
    widths = list(np.round(np.linspace(0.01, 0.3, 25), 4))
    configs = sweep.grid(widths, [1, 3, 7, 14, 30, 60, 90], partials=(1.0, 0.75, 0.5, 0.25))[
        : args.configs
    ]
    n_days = len(days)

    start = time.perf_counter()
    result = sweep.run(market, configs)
    vectorized = time.perf_counter() - start
    rng = np.random.default_rng(0)
    sample = [
        configs[i]
        for i in rng.choice(len(configs), min(args.loop_sample, len(configs)), replace=False)
    ]
    start = time.perf_counter()
    for config in sample:
        sweep.reference_loop(market, config)
    loop = time.perf_counter() - start
    start = time.perf_counter()
    run_sweep(market, configs, workers=args.workers)
    parallel = time.perf_counter() - start

    vector_rate = len(configs) * n_days / vectorized
    loop_rate = len(sample) * n_days / loop
    print(
        f"dataset: {n_days} days x 4 assets; {len(configs)} configurations ({int(result.rebalances.sum()):,} rebalances)"
    )
    print(
        f"vectorized:      {vector_rate:>14,.0f} configuration-days/s  ({len(configs)}-configuration sweep in {vectorized:.2f}s)"
    )
    print(
        f"python loop:     {loop_rate:>14,.0f} configuration-days/s  ({len(sample)} configurations in {loop:.2f}s)"
    )
    print(
        f"{args.workers} local processes: the same {len(configs)}-configuration sweep in {parallel:.2f}s"
    )
    print(f"speedup {vector_rate / loop_rate:.1f}")


if __name__ == "__main__":
    main()
