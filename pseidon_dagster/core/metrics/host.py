"""What the page says about this machine: TCP connections to the configured servers, memory, Redis' info."""
from __future__ import annotations

import os
import socket
import time
from typing import Any

import redis
from sqlalchemy.engine import make_url

from ..config import Settings
from ..offsets import RedisClient, redis_where


def _resolve(host: str) -> set[str]:
    try:
        return {str(ai[4][0]) for ai in socket.getaddrinfo(host, None)}  # inet: the address is a str already
    except OSError:
        return set()


def _endpoints(settings: Settings) -> dict[str, set[tuple[str, int]]]:
    out: dict[str, set[tuple[str, int]]] = {"kafka": set(), "redis": set(), "etl-db": set()}
    for b in settings.kafka_brokers:
        h, _, p = b.rpartition(":")
        out["kafka"].update((ip, int(p)) for ip in _resolve(h.strip("[]")))
    for host, port in {*settings.redis.hosts, *settings.metrics_redis.hosts}:
        out["redis"].update((ip, port) for ip in _resolve(host))
    try:
        u = make_url(settings.etl_db_url)
        if u.host:
            out["etl-db"].update((ip, u.port or 3306) for ip in _resolve(u.host))
    except Exception:  # noqa: BLE001
        pass
    return out


def _proc_tcp() -> list[tuple[str, int]] | None:
    """Remote (address, port) of every ESTABLISHED TCP connection of this machine (Linux /proc/net/tcp{,6})."""
    import ipaddress

    out = []
    found = False
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    for name, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            parts = line.split()
            if len(parts) < 4 or parts[3] != "01":
                continue
            addr, port = parts[2].split(":")
            raw = bytes.fromhex(addr)
            if v6:
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = ipaddress.IPv6Address(raw)
                ip = ip.ipv4_mapped or ip
            else:
                ip = ipaddress.IPv4Address(raw[::-1])
            out.append((str(ip), int(port, 16)))
    return out if found else None


def open_connections(settings: Settings) -> dict[str, int | None]:
    conns = _proc_tcp()
    if conns is None:
        return {"tcp-conn": None, "kafka": None, "redis": None, "etl-db": None}
    out: dict[str, int | None] = {}
    for kind, eps in _endpoints(settings).items():
        out[kind] = sum(1 for c in conns if c in eps)
    out["tcp-conn"] = sum(v or 0 for v in out.values())
    return out


def host_memory() -> dict[str, float | None]:
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                info[k] = int(v.split()[0]) / 1024.0
    except OSError:
        return {"total-mb": None, "available-mb": None, "used-mb": None}
    total, avail = info.get("MemTotal"), info.get("MemAvailable")
    return {"total-mb": round(total, 1) if total else None, "available-mb": round(avail, 1) if avail else None,
            "used-mb": round(total - avail, 1) if total and avail else None}


def _own_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError):
        return None


def redis_info(r: RedisClient) -> dict:
    out: dict[str, Any] = {"server": redis_where(r)}
    try:
        t0 = time.monotonic()
        r.ping()
        out["ping-ms"] = round((time.monotonic() - t0) * 1000, 2)
        info = r.info()
        if hasattr(r, "get_nodes"):  # a cluster answers per node: sum them
            info = {"connected_clients": sum(v.get("connected_clients", 0) for v in info.values()),
                    "used_memory": sum(v.get("used_memory", 0) for v in info.values())}
        out["connected-clients"] = int(info.get("connected_clients", 0))
        out["used-memory-mb"] = round(int(info.get("used_memory", 0)) / 2**20, 2)
    except redis.RedisError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    return out
