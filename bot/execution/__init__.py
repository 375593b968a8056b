"""Execution: turn a Plan into transactions, simulate, sign, send, confirm, replace, reconcile."""
