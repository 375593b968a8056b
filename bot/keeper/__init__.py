"""The keeper: the loop and its lifecycle (loop.py), the circuit breaker (breaker.py), the books
it keeps in the journal (books.py), its modes (modes.py) and when it cycles (schedule.py)."""

from bot.keeper.loop import CycleResult, Keeper
from bot.keeper.modes import Mode, choose_mode
from bot.keeper.schedule import finish_within

__all__ = ["CycleResult", "Keeper", "Mode", "choose_mode", "finish_within"]
