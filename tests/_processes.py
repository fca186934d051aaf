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


def _listening_inodes() -> dict[int, tuple[str, int]]:
    """socket inode -> (ip, port) of every TCP socket in LISTEN state (IPv4 and IPv6)."""
    import ipaddress

    out: dict[int, tuple[str, int]] = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            with open(table) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":                       # TCP_LISTEN
                continue
            hex_ip, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            addr = ipaddress.ip_address(raw)
            mapped = getattr(addr, "ipv4_mapped", None)     # ::ffff:127.0.0.1 -> 127.0.0.1
            ip = str(mapped or addr)
            out[int(fields[9])] = (ip, int(hex_port, 16))
    return out


def listening_sockets(pids) -> list[tuple[str, int, int]]:
    """(ip, port, pid) of every TCP socket some process of ``pids`` listens on."""
    inodes = _listening_inodes()
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in inodes:
                    found.append((*inodes[inode], pid))
    return found
