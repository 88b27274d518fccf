"""What a run costs: Redis `INFO` deltas, process CPU time, and summary statistics.

A cost window is two `CostSnapshot`s, one before and one after the load;
`Cost.between(before, after)` is their difference. Redis figures come from
`INFO` (commandstats, cpu, memory); server CPU is the `ojs-server` process's
user + system time from /proc (all its threads and worker processes, not its
redis-server child, which `INFO cpu` covers). The benchmark's own `INFO` calls are left out.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

# Calls of these run a Lua script (or function); the commands a script runs are counted on their own as well.
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
# Sent by the benchmark while measuring, not by the server.
_OWN_COMMANDS = frozenset({"info"})
_CMDSTAT = "cmdstat_"


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `samples` (`fraction` in 0..1)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def figure(runs: Sequence[float | None], digits: int = 3) -> dict[str, Any]:
    """A reported figure: the median of the runs, and every run's value (None where not measured)."""
    values = [v for v in runs if v is not None]
    median = round(statistics.median(values), digits) if values else None
    return {"median": median, "runs": [None if v is None else round(v, digits) for v in runs]}


def _proc_stat(pid: str) -> tuple[str, int, float] | None:
    """(command name, parent pid, user + system CPU seconds) of a process, from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 1 :].split()
    # Field 4 is the parent pid; 14 and 15 are utime and stime, in clock ticks, for all threads.
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(pid: int) -> float | None:
    """CPU seconds of process `pid` and its descendants, leaving out redis-server; None without /proc.

    The descendants matter when the server runs several worker processes; its
    private redis-server is measured through `INFO cpu` instead.
    """
    root = _proc_stat(str(pid))
    if root is None:
        return None
    children: dict[int, list[tuple[int, str, float]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(entry.name)) is not None:
            name, parent, cpu = stat
            children.setdefault(parent, []).append((int(entry.name), name, cpu))
    total = root[2]
    pending = [pid]
    while pending:
        for child, name, cpu in children.get(pending.pop(), []):
            if name != "redis-server":
                total += cpu
                pending.append(child)
    return total


@dataclass(frozen=True)
class RedisSample:
    """Cumulative counters of one Redis `INFO` reply."""

    calls: Mapping[str, int]  # command name (lower case, "client|setname" for subcommands) -> calls
    cpu_s: float  # used_cpu_user + used_cpu_sys: the redis-server process, all threads
    child_cpu_s: float  # forked children (AOF rewrites, snapshots)
    used_memory: int
    used_memory_dataset: int


async def redis_sample(redis: Redis) -> RedisSample:
    info: dict[str, Any] = await redis.info("everything")
    calls = {
        key.removeprefix(_CMDSTAT): int(stats["calls"])
        for key, stats in info.items()
        if key.startswith(_CMDSTAT) and key.removeprefix(_CMDSTAT) not in _OWN_COMMANDS
    }
    return RedisSample(
        calls=calls,
        cpu_s=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        child_cpu_s=float(info.get("used_cpu_user_children", 0.0)) + float(info.get("used_cpu_sys_children", 0.0)),
        used_memory=int(info["used_memory"]),
        used_memory_dataset=int(info.get("used_memory_dataset", 0)),
    )


@dataclass(frozen=True)
class CostSnapshot:
    redis: RedisSample
    server_cpu_s: float | None


async def cost_snapshot(redis: Redis, server_pid: int) -> CostSnapshot:
    return CostSnapshot(redis=await redis_sample(redis), server_cpu_s=server_cpu_s(server_pid))


@dataclass(frozen=True)
class Cost:
    """Resources used between two snapshots; `per_job` turns them into per-job figures."""

    calls: Mapping[str, int]
    redis_cpu_s: float
    redis_child_cpu_s: float
    server_cpu_s: float | None

    @classmethod
    def between(cls, before: CostSnapshot, after: CostSnapshot) -> Cost:
        calls = {
            name: count - before.redis.calls.get(name, 0)
            for name, count in after.redis.calls.items()
            if count != before.redis.calls.get(name, 0)
        }
        server = (
            None
            if before.server_cpu_s is None or after.server_cpu_s is None
            else after.server_cpu_s - before.server_cpu_s
        )
        return cls(
            calls=calls,
            redis_cpu_s=after.redis.cpu_s - before.redis.cpu_s,
            redis_child_cpu_s=after.redis.child_cpu_s - before.redis.child_cpu_s,
            server_cpu_s=server,
        )

    def __add__(self, other: Cost) -> Cost:
        names = set(self.calls) | set(other.calls)
        server = (
            None if self.server_cpu_s is None or other.server_cpu_s is None else self.server_cpu_s + other.server_cpu_s
        )
        return Cost(
            calls={name: self.calls.get(name, 0) + other.calls.get(name, 0) for name in names},
            redis_cpu_s=self.redis_cpu_s + other.redis_cpu_s,
            redis_child_cpu_s=self.redis_child_cpu_s + other.redis_child_cpu_s,
            server_cpu_s=server,
        )

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def script_calls(self) -> int:
        return sum(count for name, count in self.calls.items() if name in SCRIPT_COMMANDS)

    def per_job(self, jobs: int) -> JobCost:
        n = max(jobs, 1)
        return JobCost(
            redis_calls=self.total_calls / n,
            redis_script_calls=self.script_calls / n,
            redis_calls_by_command={name: count / n for name, count in sorted(self.calls.items())},
            redis_cpu_us=self.redis_cpu_s * 1e6 / n,
            redis_child_cpu_us=self.redis_child_cpu_s * 1e6 / n,
            server_cpu_us=None if self.server_cpu_s is None else self.server_cpu_s * 1e6 / n,
        )


@dataclass(frozen=True)
class JobCost:
    redis_calls: float
    redis_script_calls: float
    redis_calls_by_command: Mapping[str, float]
    redis_cpu_us: float
    redis_child_cpu_us: float
    server_cpu_us: float | None
