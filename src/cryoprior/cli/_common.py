"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import logging
import sys
from typing import Any


def setup_logging(verbose: int = 0, *, default_level: int = logging.WARNING) -> None:
    """Log to stderr; -v gives INFO, -vv DEBUG."""
    level = default_level
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_key_values(items: list[str] | None) -> dict[str, Any]:
    """['a=1', 'b=x'] -> {'a': 1, 'b': 'x'}; ValueError for an item without '='."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


def print_validation(console, report, *, title: str, json_path, figures) -> None:
    """Print a validation report's summary table, where its metrics and figures were written."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.summary_rows():
        table.add_row(name, value)
    console.print(table)
    console.print(f"metrics: {json_path}")
    console.print("figures: " + ", ".join(str(f) for f in figures))
