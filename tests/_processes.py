"""Process bookkeeping shared by the tests that start workers (local, Ray, CLI)."""

from __future__ import annotations

import os
import time


def descendants(root: int | None = None) -> dict[int, str]:
    """pid -> name of every live (non-zombie) descendant of ``root`` (default: this
    process), read from /proc."""
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                text = fh.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue                                   # a zombie is already dead
        parent[int(entry)] = int(fields[1])
        names[int(entry)] = text[text.index("(") + 1:text.rindex(")")]
    out: dict[int, str] = {}
    front = [root or os.getpid()]
    while front:
        p = front.pop()
        for child, par in parent.items():
            if par == p and child not in out:
                out[child] = names[child]
                front.append(child)
    return out


def wait_gone(pids: dict[int, str], timeout: float = 20.0) -> dict[int, str]:
    """Wait until none of ``pids`` is a live descendant; return the survivors."""
    end = time.monotonic() + timeout
    left = dict(pids)
    while left and time.monotonic() < end:
        alive_now = descendants()
        left = {p: n for p, n in left.items() if p in alive_now}
        if left:
            time.sleep(0.2)
    return left
