"""What every part of the journal shares: the connection, and the write transaction."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bot.errors import Halt


class Store:
    """One table's (or two tables') methods; `Journal` opens the connection they share."""

    _db: sqlite3.Connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise Halt(
                f"journal write failed ({err}): stopping, no trade without a record"
            ) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise


def encoded(value: Any) -> Any:
    """A value as its column holds it: dicts, lists and tuples as JSON text."""
    return json.dumps(value) if isinstance(value, dict | list | tuple) else value


def decoded(text: str | None) -> Any:
    """A JSON column's value; None (SQL NULL) or empty text stays as it is."""
    return json.loads(text) if text else text
