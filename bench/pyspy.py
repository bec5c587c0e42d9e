"""py-spy's raw output (``--format raw``: one collapsed stack and its sample count per line),
read once for the benchmarks' profile reports."""

from __future__ import annotations

from pathlib import Path


def collapsed_stacks(path: Path) -> list[tuple[list[str], int]]:
    """(frames outermost first, samples) per recorded stack; empty if py-spy wrote nothing."""
    if not path.exists():
        return []
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stacks.append((stack.split(";"), int(count)))
    return stacks


def print_self_time(stacks: list[tuple[list[str], int]], title: str, top: int, width: int) -> None:
    """The functions the samples were in (innermost frame), largest first."""
    overall = max(1, sum(samples for _, samples in stacks))
    own: dict[str, int] = {}
    for frames, samples in stacks:
        own[frames[-1]] = own.get(frames[-1], 0) + samples
    print(title)
    for frame, samples in sorted(own.items(), key=lambda item: -item[1])[:top]:
        print(f"  {100 * samples / overall:5.1f}%  {frame[:width]}")
