"""Every Redis key the server uses, built from one configurable prefix.

A prefix with a hash tag (e.g. "{ojs}:") keeps all keys in one Redis Cluster
slot, which the multi-key Lua scripts need there.
"""

from __future__ import annotations


class KeySchema:
    def __init__(self, prefix: str = "ojs") -> None:
        if not prefix:
            raise ValueError("key prefix must not be empty")
        self.prefix = prefix if prefix.endswith(":") else f"{prefix}:"
        p = self.prefix
        # Per-entity prefixes; the Lua scripts append a job id or queue name.
        self.job_prefix = f"{p}job:"  # hash: the job's fields
        self.errors_prefix = f"{p}errors:"  # list: the job's error history, oldest first
        self.available_prefix = f"{p}available:"  # zset per queue: score = priority rank + sequence
        self.delayed_prefix = f"{p}delayed:"  # zset per queue: scheduled and retryable jobs by due time
        self.worker_prefix = f"{p}worker:"  # hash per worker: last heartbeat, state, directive
        self.cron_prefix = f"{p}cron:"  # hash per cron entry: definition and run history
        self.workflow_prefix = f"{p}wf:"  # hash per workflow: state and counters
        self.workflow_nodes_prefix = f"{p}wfn:"  # hash per workflow: its node table (see lua/include/wf_settle.lua)
        self.queue_counts_prefix = f"{p}qcount:"  # hash per queue: state gauges and totals
        self.queue_minutes_prefix = f"{p}qmin:"  # hash per queue and minute: activity, kept 2 hours
        self.queue_metrics_prefix = f"{p}qmetrics:"  # hash per queue: totals and histograms by job type
        self.queue_limits_prefix = f"{p}qconf:"  # hash per queue: max_per_second, concurrency
        self.queue_rate_prefix = f"{p}rate:"  # zset per queue: starts in the last second
        self.unique_prefix = f"{p}unique:"  # string per fingerprint: id of the job holding it
        self.stats_minutes_prefix = f"{p}smin:"  # hash per minute: activity summed over all queues, kept 2 hours
        # Job indexes by state (zset: job id -> time it entered the state, ms): all queues, and per queue
        # (the state, a colon, then the queue name).
        self.state_index_prefix = f"{p}sidx:"
        self.queue_state_index_prefix = f"{p}qidx:"
        # Fixed keys.
        self.active = f"{p}active"  # zset: active job id -> lease deadline (ms)
        self.queues = f"{p}queues"  # hash: queue name -> created_at (ms)
        self.sequence = f"{p}seq"  # counter: enqueue order, for FIFO within a priority
        self.events = f"{p}events"  # stream: the event log
        self.dead = f"{p}dead"  # zset: dead-lettered job id -> discarded_at (ms)
        self.workers = f"{p}workers"  # zset: worker id -> last heartbeat (ms)
        self.expiring = f"{p}expiring"  # zset: not-yet-started job id -> expires_at (ms)
        self.cron_names = f"{p}cron_names"  # zset: cron entry name -> created_at (ms)
        self.cron_due = f"{p}cron_due"  # zset: enabled cron entry name -> next run (ms)
        self.paused = f"{p}paused"  # hash: paused queue name -> paused since (ms)
        self.workflows = f"{p}workflows"  # zset: workflow id -> created_at (ms)
        # Pub/sub channel (not a key): the available set of a queue that just got jobs.
        self.notify_channel = f"{p}notify"

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def errors(self, job_id: str) -> str:
        return self.errors_prefix + job_id

    def available(self, queue: str) -> str:
        return self.available_prefix + queue

    def delayed(self, queue: str) -> str:
        return self.delayed_prefix + queue

    def workflow(self, workflow_id: str) -> str:
        return self.workflow_prefix + workflow_id

    def workflow_nodes(self, workflow_id: str) -> str:
        return self.workflow_nodes_prefix + workflow_id

    def cron(self, name: str) -> str:
        return self.cron_prefix + name

    def worker(self, worker_id: str) -> str:
        return self.worker_prefix + worker_id

    def queue_counts(self, queue: str) -> str:
        return self.queue_counts_prefix + queue

    def state_index(self, state: str) -> str:
        return self.state_index_prefix + state

    def queue_state_index(self, state: str, queue: str) -> str:
        return f"{self.queue_state_index_prefix}{state}:{queue}"

    def stats_minute(self, minute: int) -> str:
        return f"{self.stats_minutes_prefix}{minute}"

    def queue_metrics(self, queue: str) -> str:
        return self.queue_metrics_prefix + queue

    def queue_minute(self, queue: str, minute: int) -> str:
        return f"{self.queue_minutes_prefix}{queue}:{minute}"
