"""Backtests: the live strategies and planner over simulated pools (engine.py), and a vectorized
engine for parameter sweeps (sweep.py) checked against a plain per-configuration loop."""
