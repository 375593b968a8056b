"""The daily price dataset: a CSV of a `date` column and one USD price column per asset."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by date; a missing or empty cell is absent from that day's row."""

    path: Path
    columns: tuple[str, ...]
    rows: dict[date, dict[str, float]]

    def price(self, day: date, column: str) -> float:
        if column not in self.columns:
            raise ConfigError(
                f"{self.path.name} has no column {column!r} (it has: {', '.join(self.columns)})"
            )
        row = self.rows.get(day)
        if row is None:
            first, last = min(self.rows), max(self.rows)
            raise ConfigError(
                f"date {day} is not in {self.path.name} (it covers {first} to {last})"
            )
        value = row.get(column)
        if value is None:
            raise ConfigError(f"{self.path.name} has no {column} price on {day} (empty cell)")
        return value


def load_prices(path: Path) -> PriceTable:
    """Read and check the CSV: ISO dates, unique, positive finite prices.

    UTF-8 with or without a byte order mark. Every way a file can be unusable is a one-line
    ConfigError naming the file (and the line, when one is at fault) and what is wrong.
    """
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise ConfigError(f"price file {path} {what}: pass --prices, or set REBALANCER_PRICES_CSV")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            return _read_prices(path, reader)
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (it holds byte {err.object[err.start]:#04x}): "
            "save it as UTF-8 CSV"
        ) from None
    except csv.Error as err:
        raise ConfigError(f"{path}:{reader.line_num}: not a readable CSV row ({err})") from None
    except OSError as err:
        raise ConfigError(f"price file {path} cannot be read: {err.strerror or err}") from None


def _read_prices(path: Path, reader: Iterator[list[str]]) -> PriceTable:
    header = next(reader, None)
    if not header or header[0].strip().lower() != "date" or len(header) < 2:
        found = ",".join(header) if header else "an empty file"
        raise ConfigError(f"{path}:1: the first row must be `date,<asset>,...`, not {found[:60]!r}")
    columns = tuple(name.strip() for name in header[1:])
    for number, name in enumerate(columns, start=2):
        if not name:
            raise ConfigError(f"{path}:1: column {number} has no name")
        if columns.count(name) > 1:
            raise ConfigError(f"{path}:1: column {name!r} appears twice")
    rows: dict[date, dict[str, float]] = {}
    last: date | None = None
    for line_no, record in enumerate(reader, start=2):
        if not record:
            continue
        if len(record) > len(header):
            raise ConfigError(
                f"{path}:{line_no}: {len(record)} cells, but the header names {len(header)}"
            )
        try:
            day = date.fromisoformat(record[0].strip())
        except ValueError:
            raise ConfigError(f"{path}:{line_no}: {record[0]!r} is not a YYYY-MM-DD date") from None
        if day in rows:
            raise ConfigError(f"{path}:{line_no}: date {day} appears twice")
        if last is not None and day < last:
            raise ConfigError(
                f"{path}:{line_no}: date {day} comes after {last}: sort the file by date"
            )
        last = day
        row: dict[str, float] = {}
        for column, cell in zip(columns, record[1:], strict=False):
            if not cell.strip():
                continue
            try:
                value = float(cell)
            except ValueError:
                raise ConfigError(f"{path}:{line_no}: {column}={cell!r} is not a number") from None
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{path}:{line_no}: {column}={cell} must be a positive price")
            row[column] = value
        rows[day] = row
    if not rows:
        raise ConfigError(f"{path} has no rows")
    return PriceTable(path=path, columns=columns, rows=rows)


def price_matrix(
    table: PriceTable,
    columns: list[str],
    start: date | None = None,
    end: date | None = None,
) -> tuple[list[date], list[list[float]]]:
    """Rows of prices for `columns` between `start` and `end` (inclusive).

    Fill policy: a missing or empty cell takes the column's last known price (forward fill);
    days absent from the file are simply not simulated (rows follow the file's dates); a
    column with no price at all on or before the first date is an error (pick a later --from).
    """
    for column in columns:
        if column not in table.columns:
            raise ConfigError(
                f"{table.path.name} has no column {column!r} (it has: {', '.join(table.columns)})"
            )
    days = [
        d for d in sorted(table.rows) if (start is None or d >= start) and (end is None or d <= end)
    ]
    if len(days) < 2:
        raise ConfigError(f"{table.path.name}: fewer than two dates between {start} and {end}")
    last: dict[str, float] = {}
    for day in sorted(table.rows):
        if day >= days[0]:
            break
        last.update(table.rows[day])
    matrix = []
    for day in days:
        row = table.rows[day]
        values = []
        for column in columns:
            value = row.get(column, last.get(column))
            if value is None:
                raise ConfigError(
                    f"{table.path.name}: {column} has no price on or before {day}: start later "
                    "(--from) or drop the asset"
                )
            last[column] = value
            values.append(value)
        matrix.append(values)
    return days, matrix
