"""Where a new log is followed from: ``start = "end" | "beginning" | <index> | <RFC 3339 time>``.

Real logs hold billions of entries, nearly all of issuers nobody here watches: like
certspotter's ``-start_at_end``, a log seen for the first time is followed from its current
head by default. A time is found by binary search over entry timestamps (SCT timestamps are
nearly in log order; the search finds a first entry at or after the time if they are sorted,
and some nearby position if not). Timestamps read during the search are only hints: nothing is
believed until the compact tree at the position found is proven against a signed head.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ctstatus.ct.client import LogClient
from ctstatus.ct.errors import DecodeError
from ctstatus.ct.reader import TileTree
from ctstatus.ct.structures import SignedTreeHead
from ctstatus.ct.tiles import TILE_WIDTH, TileLeaf
from ctstatus.ct.transport import LogMalformedResponse

StartKind = Literal["end", "beginning", "index", "time"]


@dataclass(frozen=True)
class StartAt:
    """A parsed ``start`` setting."""

    kind: StartKind
    index: int = 0  # for "index"
    time_ms: int = 0  # for "time": milliseconds since the epoch, as SCT timestamps count

    def describe(self) -> str:
        if self.kind == "index":
            return f"index {self.index}"
        if self.kind == "time":
            when = datetime.fromtimestamp(self.time_ms / 1000, UTC)
            return when.isoformat().replace("+00:00", "Z")
        return self.kind


BEGINNING = StartAt("beginning")
END = StartAt("end")


def parse_start(value: object) -> StartAt:
    """``"end"``, ``"beginning"``, an index >= 0, or an RFC 3339 time (TOML's own datetime or a
    string with a UTC offset); ValueError says what is accepted."""
    if isinstance(value, StartAt):
        return value
    if isinstance(value, bool):
        raise ValueError('start must be "end", "beginning", an entry index or an RFC 3339 time')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"start index {value} is negative")
        return StartAt("index", index=value)
    when: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        if value == "end":
            return END
        if value == "beginning":
            return BEGINNING
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            when = None
        if when is None or "T" not in value.upper():
            raise ValueError(
                f'start {value!r} is not "end", "beginning", an index or an RFC 3339 time '
                "(e.g. 2026-12-01T00:00:00Z)"
            )
    if when is None:
        raise ValueError('start must be "end", "beginning", an entry index or an RFC 3339 time')
    if when.tzinfo is None:
        raise ValueError(f"start time {when.isoformat()} has no UTC offset (add Z or +00:00)")
    return StartAt("time", time_ms=int(when.timestamp() * 1000))


async def start_index(
    client: LogClient, sth: SignedTreeHead, start: StartAt, tiles: TileTree | None
) -> int | None:
    """The entry index to follow from, for the head ``sth``; None for an index past the head
    (the log has not reached it: ask again next pass)."""
    if start.kind == "beginning":
        return 0
    if start.kind == "end":
        return sth.tree_size
    if start.kind == "index":
        return start.index if start.index <= sth.tree_size else None
    return await first_at_or_after(client, sth, start.time_ms, tiles)


async def first_at_or_after(
    client: LogClient, sth: SignedTreeHead, time_ms: int, tiles: TileTree | None
) -> int:
    """Binary search: the first index whose timestamp is >= ``time_ms`` (the head's size if
    none is); about log2(size) single-entry reads."""
    low, high = 0, sth.tree_size
    while low < high:
        middle = (low + high) // 2
        if await _timestamp(client, middle, tiles) < time_ms:
            low = middle + 1
        else:
            high = middle
    return low


async def _timestamp(client: LogClient, index: int, tiles: TileTree | None) -> int:
    if tiles is None:
        entry = (await client.get_entries(index, index))[0]
        if entry.timestamp_ms is None:
            raise LogMalformedResponse("get-entries", f"entry {index} has an unknown type")
        return entry.timestamp_ms
    tile, position = divmod(index, TILE_WIDTH)
    try:
        width = tiles.width(0, tile)
    except ValueError as exc:
        raise LogMalformedResponse("data tile", str(exc)) from None
    leaves: tuple[TileLeaf, ...] = await client.get_data_tile(tile, width, check_index=False)
    try:
        return leaves[position].timestamped_entry.timestamp
    except (IndexError, DecodeError) as exc:
        raise LogMalformedResponse("data tile", f"entry {index}: {exc}") from None
