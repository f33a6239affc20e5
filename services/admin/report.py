"""How the admin commands print: aligned tables for a person, JSON for a script."""

import json
import time
from datetime import datetime, timezone


def table(headers: list[str], rows: list[list]) -> str:
    """Columns as wide as their widest cell, two spaces apart; "-" for a missing cell."""
    cells = [[("-" if cell is None or cell == "" else str(cell)) for cell in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]
    lines = [headers] + cells
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def age(since: float | None, now: float = None) -> str:
    """How long ago, in its two largest units: 45s, 3m12s, 5h02m, 2d03h."""
    if since is None:
        return "-"
    seconds = max(0, int((now or time.time()) - since))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def when(moment: float | None) -> str:
    """A time in UTC, to the second."""
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def short(text, most: int = 40) -> str:
    """A text on one line, cut to `most` characters."""
    line = " ".join(str(text or "").split())
    return line if len(line) <= most else line[: most - 1] + "…"


def as_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
