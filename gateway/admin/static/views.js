// The pages of the dashboard, one view per section.
"use strict";

(() => {
  const {h, badge, fmtTime, timeCell, num, json, api, query, act, register, go, pager} = OJS;
  const STATES = ["available", "active", "scheduled", "retryable", "pending", "completed", "discarded", "cancelled"];
  const enc = encodeURIComponent;

  function table(headers, rows, empty) {
    if (!rows.length) return h("p", {class: "muted"}, empty || "Nothing here.");
    return h("div", {class: "table-wrap"}, h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => (typeof x === "string" ? h("th", {scope: "col"}, x) : x)))),
      h("tbody", {}, rows)));
  }

  const th = (text, cls) => h("th", {scope: "col", class: cls}, text);
  const card = (label, value, id) => h("div", {class: "card", id}, h("div", {class: "n"}, value), h("div", {class: "l"}, label));
  const jobLink = (id) => h("a", {class: "mono", href: `#/jobs/${enc(id)}`}, id);
  const queueLink = (name) => h("a", {href: `#/queues/${enc(name)}`}, name);

  // ---- Overview ----

  register("overview", {
    title: () => "Overview",
    async render() {
      const [stats, history, queues, workers] = await Promise.all([
        api("/stats"), api("/stats/history?period=1m"), api("/queues?limit=10"), api("/workers?limit=10"),
      ]);
      const times = history.data.map((p) => p.timestamp);
      const j = stats.jobs;
      return [
        h("h1", {}, "Overview"),
        h("div", {class: "cards"},
          card("Available", num(j.available), "stat-available"), card("Active", num(j.active), "stat-active"),
          card("Scheduled", num(j.scheduled)), card("Retryable", num(j.retryable)),
          card("Completed (kept)", num(j.completed), "stat-completed"), card("Dead letter", num(stats.dead_letter)),
          card("Processed / min", num(stats.throughput.processed_per_minute)),
          card("Failed / min", num(stats.throughput.failed_per_minute)),
          card("Queues", num(stats.queues)), card("Workers", num(stats.workers))),
        h("div", {class: "grid2"},
          Charts.lineChart("Throughput per minute", times, [
            {label: "processed", color: "#1f7a3a", values: history.data.map((p) => p.processed)},
            {label: "enqueued", color: "#2957c7", values: history.data.map((p) => p.enqueued)},
          ]),
          Charts.lineChart("Failures per minute", times, [
            {label: "failed", color: "#b3261e", values: history.data.map((p) => p.failed)},
          ])),
        h("div", {class: "grid2"},
          h("section", {}, h("h2", {}, "Queues ", h("a", {href: "#/queues", class: "muted"}, "all")), queueTable(queues.items, true)),
          h("section", {}, h("h2", {}, "Workers ", h("a", {href: "#/workers", class: "muted"}, "all")), workerTable(workers.items, true))),
      ];
    },
  });

  // ---- Queues ----

  function queueTable(items, compact) {
    const counts = compact ? ["available", "active"] : ["available", "active", "scheduled", "retryable", "completed", "discarded"];
    return table([th("Queue"), th("State"), th("Depth"), counts.map((k) => th(k[0].toUpperCase() + k.slice(1), "num")), th("Processed/min", "num")],
      items.map((q) => h("tr", {"data-queue": q.name},
        h("td", {}, queueLink(q.name)), h("td", {}, badge(q.state)), h("td", {}, Charts.stateBar(q.counts)),
        counts.map((k) => h("td", {class: "num", "data-count": k}, num(q.counts[k]))),
        h("td", {class: "num"}, num(q.throughput.processed_per_minute)))), "No queues yet.");
  }

  register("queues", {
    title: (name) => name || "Queues",
    live: (event, r) => !r.arg || event.queue === r.arg || String(event.type || "").startsWith("queue."),
    async render(name, params) {
      if (name) return queueDetail(name);
      const data = await api(`/queues${query({limit: 50, cursor: params.get("cursor"), prefix: params.get("prefix")})}`);
      const form = h("form", {class: "filters", role: "search", onsubmit: (e) => {
        e.preventDefault();
        go(`#/queues?${new URLSearchParams({prefix: e.target.prefix.value})}`);
      }}, h("label", {}, "Name starts with", h("input", {id: "queue-prefix", name: "prefix", value: params.get("prefix") || ""})),
      h("button", {type: "submit"}, "Filter"));
      return [h("h1", {}, "Queues"), form, queueTable(data.items), pager(params, data.pagination, "#/queues")];
    },
  });

  async function queueDetail(name) {
    const q = await api(`/queues/${enc(name)}`);
    const toggle = q.paused
      ? h("button", {type: "button", class: "primary", id: "resume-queue", onclick: (e) => act(e.target, () => api(`/queues/${enc(name)}/resume`, {method: "POST"}), `Queue ${name} resumed`)}, "Resume")
      : h("button", {type: "button", id: "pause-queue", onclick: (e) => act(e.target, () => api(`/queues/${enc(name)}/pause`, {method: "POST"}), `Queue ${name} paused`)}, "Pause");
    const purgeStates = ["completed", "discarded", "cancelled"];
    const purge = h("form", {class: "filters", onsubmit: async (e) => {
      e.preventDefault();
      const states = purgeStates.filter((s) => e.target[`purge-${s}`].checked);
      if (!states.length) return OJS.flash("Choose at least one state to purge", true);
      const count = states.reduce((a, s) => a + (q.counts[s] || 0), 0);
      if (!confirm(`Permanently delete about ${count} ${states.join("/")} jobs of queue ${name}? This cannot be undone.`)) return;
      await act(e.submitter, () => api(`/queues/${enc(name)}/jobs`, {method: "DELETE", body: {states, confirm: true}}), (r) => `Purged ${r.purged_count} jobs`);
    }}, purgeStates.map((s) => h("label", {class: "check"}, h("input", {type: "checkbox", name: `purge-${s}`, checked: s === "completed"}), s)),
    h("button", {type: "submit", class: "danger"}, "Purge…"));
    return [
      h("h1", {}, "Queue ", h("span", {class: "mono"}, name), " ", badge(q.state)),
      h("div", {class: "actions"}, toggle, h("a", {href: `#/jobs?${new URLSearchParams({queue: name, state: "available"})}`}, "Browse jobs")),
      h("div", {class: "cards"}, STATES.map((s) => h("a", {class: "card", href: `#/jobs?${new URLSearchParams({queue: name, state: s})}`, style: "text-decoration:none;color:inherit"},
        h("div", {class: "n", "data-count": s}, num(q.counts[s])), h("div", {class: "l"}, s)))),
      h("div", {class: "grid2"},
        h("section", {class: "panel"}, h("h2", {}, "Activity (last hour)"), h("dl", {class: "kv"},
          h("dt", {}, "Processed / min"), h("dd", {}, num(q.throughput.processed_per_minute)),
          h("dt", {}, "Failed / min"), h("dd", {}, num(q.throughput.failed_per_minute)),
          h("dt", {}, "Completed"), h("dd", {}, num(q.throughput.completed_last_hour)),
          h("dt", {}, "Failed"), h("dd", {}, num(q.throughput.failed_last_hour)),
          h("dt", {}, "Avg run time"), h("dd", {}, `${Math.round(q.throughput.avg_duration_ms)} ms`),
          h("dt", {}, "Avg wait"), h("dd", {}, `${Math.round(q.throughput.avg_wait_ms)} ms`))),
        h("section", {class: "panel"}, h("h2", {}, "Configuration"), h("dl", {class: "kv"},
          h("dt", {}, "Concurrency"), h("dd", {}, q.configuration.concurrency || "unlimited"),
          h("dt", {}, "Rate limit"), h("dd", {}, q.configuration.max_per_second ? `${q.configuration.max_per_second}/s` : "unlimited"),
          h("dt", {}, "Created"), h("dd", {}, fmtTime(q.created_at)),
          h("dt", {}, "Paused since"), h("dd", {}, q.paused_at ? fmtTime(q.paused_at) : "—"),
          h("dt", {}, "Ever completed"), h("dd", {}, num(q.totals.completed))))),
      h("h2", {}, "Purge finished jobs"), purge,
    ];
  }

  // ---- Jobs ----

  function filterOf(params) {
    return {state: params.get("state") || "available", queue: params.get("queue") || "", type: params.get("type") || "",
      since: params.get("since") || "", until: params.get("until") || ""};
  }

  function localInput(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }

  function jobFilters(f, base) {
    return h("form", {class: "filters", role: "search", onsubmit: (e) => {
      e.preventDefault();
      const el = e.target;
      const p = {state: el.state.value, queue: el.queue.value.trim(), type: el.type.value.trim(),
        since: el.since.value ? new Date(el.since.value).toISOString() : "", until: el.until.value ? new Date(el.until.value).toISOString() : ""};
      go(`${base}?${new URLSearchParams(Object.entries(p).filter(([, v]) => v))}`);
    }},
    h("label", {}, "State", h("select", {name: "state", id: "f-state"}, STATES.map((s) => h("option", {value: s, selected: s === f.state}, s)))),
    h("label", {}, "Queue", h("input", {name: "queue", id: "f-queue", value: f.queue, placeholder: "any"})),
    h("label", {}, "Type (prefix*)", h("input", {name: "type", id: "f-type", value: f.type, placeholder: "any"})),
    h("label", {}, "Since", h("input", {type: "datetime-local", name: "since", id: "f-since", value: localInput(f.since)})),
    h("label", {}, "Until", h("input", {type: "datetime-local", name: "until", id: "f-until", value: localInput(f.until)})),
    h("button", {type: "submit", class: "primary"}, "Apply"));
  }

  async function bulk(button, action, f) {
    const filter = Object.fromEntries(Object.entries(f).filter(([, v]) => v));
    const dry = await act(null, () => api(`/jobs/bulk/${action}`, {method: "POST", body: {filter, dry_run: true, limit: 10000}}));
    if (!dry) return;
    if (!dry.matched) return OJS.flash("No jobs match");
    const more = dry.truncated ? " (the first 10,000 of more)" : "";
    if (!confirm(`${action[0].toUpperCase() + action.slice(1)} ${dry.matched} matching jobs${more}?`)) return;
    await act(button, () => api(`/jobs/bulk/${action}`, {method: "POST", body: {filter, confirm: true, limit: 10000}}),
      (r) => `${action}: ${r.succeeded} done${r.failed ? `, ${r.failed} failed` : ""}`);
  }

  function bulkButtons(f) {
    const terminal = ["completed", "discarded", "cancelled"].includes(f.state);
    return h("div", {class: "actions"},
      ["discarded", "cancelled"].includes(f.state) && h("button", {type: "button", id: "bulk-retry", onclick: (e) => bulk(e.target, "retry", f)}, "Retry all matching…"),
      !terminal && h("button", {type: "button", class: "danger", id: "bulk-cancel", onclick: (e) => bulk(e.target, "cancel", f)}, "Cancel all matching…"),
      terminal && h("button", {type: "button", class: "danger", id: "bulk-delete", onclick: (e) => bulk(e.target, "delete", f)}, "Delete all matching…"));
  }

  function jobRows(items, extra) {
    return items.map((j) => h("tr", {"data-job": j.id},
      h("td", {}, jobLink(j.id)), h("td", {}, j.type), h("td", {}, queueLink(j.queue)), h("td", {}, badge(j.state)),
      h("td", {class: "num"}, `${j.attempt}/${j.max_attempts || "∞"}`), h("td", {}, timeCell(j.state_at)),
      h("td", {}, h("span", {class: "trunc mono", title: JSON.stringify(j.args)}, JSON.stringify(j.args))),
      h("td", {}, j.error_message ? h("span", {class: "trunc"}, j.error_message) : ""),
      extra ? h("td", {}, extra(j)) : null));
  }

  const JOB_HEADERS = [th("ID"), th("Type"), th("Queue"), th("State"), th("Attempt", "num"), th("Since"), th("Args"), th("Error")];

  register("jobs", {
    title: (id) => (id ? `Job ${id}` : "Jobs"),
    live: (event, r) => !r.arg || event.job_id === r.arg,
    async render(id, params) {
      if (id) return jobDetail(id);
      const f = filterOf(params);
      const data = await api(`/jobs${query({...f, limit: 50, cursor: params.get("cursor")})}`);
      const scanned = data.pagination.scanned > data.items.length && f.type ? h("p", {class: "muted"}, `Examined ${num(data.pagination.scanned)} entries for the type filter; use Next for more.`) : null;
      return [h("h1", {}, "Jobs"), jobFilters(f, "#/jobs"), bulkButtons(f), scanned,
        table(JOB_HEADERS, jobRows(data.items), "No jobs match."), pager(params, data.pagination, "#/jobs")];
    },
  });

  async function jobDetail(id) {
    const [{job}, events] = await Promise.all([api(`/jobs/${enc(id)}`), api(`/ojs/v1/events${query({job_id: id, limit: 200})}`).catch(() => ({events: []}))]);
    const actions = h("div", {class: "actions"},
      ["discarded", "cancelled"].includes(job.state) && h("button", {type: "button", class: "primary", id: "retry-job", onclick: (e) => act(e.target, () => api(`/jobs/${enc(id)}/retry`, {method: "POST"}), "Job retried")}, "Retry"),
      !["completed", "discarded", "cancelled"].includes(job.state) && h("button", {type: "button", class: "danger", id: "cancel-job", onclick: (e) => confirm("Cancel this job?") && act(e.target, () => api(`/jobs/${enc(id)}/cancel`, {method: "POST"}), "Job cancelled")}, "Cancel"),
      job.workflow_id && h("a", {href: `#/workflows/${enc(job.workflow_id)}`}, "Workflow"));
    const times = ["created_at", "enqueued_at", "scheduled_at", "started_at", "completed_at", "cancelled_at", "discarded_at", "next_attempt_at", "expires_at"].filter((k) => job[k]);
    const errors = job.errors || (job.error ? [job.error] : []);
    return [
      h("h1", {}, "Job ", h("span", {class: "mono"}, job.id), " ", badge(job.state)), actions,
      h("div", {class: "grid2"},
        h("section", {class: "panel"}, h("dl", {class: "kv"},
          h("dt", {}, "Type"), h("dd", {}, job.type), h("dt", {}, "Queue"), h("dd", {}, queueLink(job.queue)),
          h("dt", {}, "Priority"), h("dd", {}, job.priority), h("dt", {}, "Attempt"), h("dd", {}, `${job.attempt} of ${job.max_attempts || "∞"}`),
          job.worker_id && [h("dt", {}, "Worker"), h("dd", {}, h("a", {href: `#/workers/${enc(job.worker_id)}`}, job.worker_id))],
          times.map((k) => [h("dt", {}, k.replace(/_at$/, "").replace("_", " ")), h("dd", {}, fmtTime(job[k]))]))),
        h("section", {class: "panel"}, h("h2", {style: "margin-top:0"}, "Events"), timeline(events.events || []))),
      h("h2", {}, "Arguments"), json(job.args),
      job.meta && Object.keys(job.meta).length ? [h("h2", {}, "Meta"), json(job.meta)] : null,
      "result" in job ? [h("h2", {}, "Result"), json(job.result)] : null,
      h("h2", {}, `Errors (${errors.length})`),
      errors.length ? h("ol", {class: "errors"}, errors.map((e) => h("li", {},
        h("strong", {}, e.type || e.code), ": ", e.message, " ", h("span", {class: "muted"}, `attempt ${e.attempt}`, e.occurred_at ? `, ${fmtTime(e.occurred_at)}` : ""),
        e.backtrace && e.backtrace.length ? h("pre", {class: "mono"}, [].concat(e.backtrace).join("\n")) : null))) : h("p", {class: "muted"}, "No errors."),
    ];
  }

  function timeline(events) {
    if (!events.length) return h("p", {class: "muted"}, "No events kept for this job.");
    return h("ol", {class: "timeline"}, events.map((e) => {
      const cls = /failed|discarded|cancel/.test(e.type) ? "bad" : /completed/.test(e.type) ? "ok" : "";
      const data = e.data || {};
      const detail = data.worker_id ? ` by ${data.worker_id}` : data.error && data.error.message ? `: ${data.error.message}` : "";
      return h("li", {class: cls}, h("strong", {}, e.type), detail, h("div", {class: "muted"}, fmtTime(e.time)));
    }));
  }

  // ---- Dead letter ----

  register("dead-letter", {
    title: () => "Dead letter",
    live: (event) => /discarded|enqueued|deleted/.test(event.type || ""),
    async render(_, params) {
      const queue = params.get("queue") || "";
      const type = params.get("type") || "";
      const data = await api(`/dead-letter${query({queue, type, limit: 50, cursor: params.get("cursor")})}`);
      const form = h("form", {class: "filters", role: "search", onsubmit: (e) => {
        e.preventDefault();
        go(`#/dead-letter?${new URLSearchParams(Object.entries({queue: e.target.queue.value.trim(), type: e.target.type.value.trim()}).filter(([, v]) => v))}`);
      }}, h("label", {}, "Queue", h("input", {name: "queue", id: "dl-queue", value: queue, placeholder: "any"})),
      h("label", {}, "Type", h("input", {name: "type", id: "dl-type", value: type, placeholder: "any"})), h("button", {type: "submit"}, "Filter"));
      const f = {state: "discarded", queue, type};
      const all = h("div", {class: "actions"},
        h("button", {type: "button", id: "dl-retry-all", onclick: (e) => bulk(e.target, "retry", f)}, "Retry all matching…"),
        h("button", {type: "button", class: "danger", id: "dl-purge", onclick: (e) => confirm("Delete every dead-lettered job? This cannot be undone.") &&
          act(e.target, () => api("/dead-letter", {method: "DELETE", body: {confirm: true}}), (r) => `Deleted ${r.purged_count} jobs`)}, "Delete all…"));
      const rows = data.jobs.map((j) => h("tr", {"data-job": j.id},
        h("td", {}, jobLink(j.id)), h("td", {}, j.type), h("td", {}, queueLink(j.queue)), h("td", {class: "num"}, j.attempt),
        h("td", {}, timeCell(j.discarded_at || j.completed_at)),
        h("td", {}, j.error ? h("span", {class: "trunc"}, `${j.error.type || j.error.code}: ${j.error.message}`) : ""),
        h("td", {}, h("div", {class: "actions", style: "margin:0"},
          h("button", {type: "button", "data-action": "retry", onclick: (e) => act(e.target, () => api(`/dead-letter/${enc(j.id)}/retry`, {method: "POST"}), "Job retried")}, "Retry"),
          h("button", {type: "button", class: "danger", "data-action": "delete", onclick: (e) => confirm("Delete this job?") && act(e.target, () => api(`/dead-letter/${enc(j.id)}`, {method: "DELETE"}), "Job deleted")}, "Delete")))));
      return [h("h1", {}, "Dead letter"), form, all,
        table([th("ID"), th("Type"), th("Queue"), th("Attempts", "num"), th("Died"), th("Error"), th("Actions")], rows, "The dead letter queue is empty."),
        pager(params, data.pagination, "#/dead-letter")];
    },
  });

  // ---- Cron ----

  register("cron", {
    title: () => "Cron",
    live: (event) => String(event.type || "").startsWith("cron."),
    async render() {
      const data = await api("/cron");
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      const rows = data.crons.map((c) => h("tr", {"data-cron": c.name},
        h("td", {}, c.name), h("td", {class: "mono"}, c.expression), h("td", {}, c.timezone || "UTC"), h("td", {}, c.type),
        h("td", {}, c.enabled ? badge("active") : badge("paused")),
        h("td", {}, c.next_run_at ? [fmtTime(c.next_run_at), " ", h("span", {class: "muted"}, `(${OJS.ago(c.next_run_at)})`)] : "—"),
        h("td", {}, c.last_run_at ? fmtTime(c.last_run_at) : "—"), h("td", {class: "num"}, num(c.run_count)),
        h("td", {}, c.last_job_id ? jobLink(c.last_job_id) : "—")));
      return [h("h1", {}, "Cron"), h("p", {class: "muted"}, `Times in your time zone (${zone}).`),
        table([th("Name"), th("Schedule"), th("Zone"), th("Job type"), th("State"), th("Next run"), th("Last run"), th("Runs", "num"), th("Last job")], rows, "No cron schedules.")];
    },
  });

  // ---- Workflows ----

  register("workflows", {
    title: (id) => (id ? `Workflow ${id}` : "Workflows"),
    live: (event) => Boolean(event.workflow_id) || String(event.type || "").startsWith("workflow.") || /completed|failed|discarded|started/.test(event.type || ""),
    async render(id, params) {
      if (id) {
        const {workflow: w} = await api(`/workflows/${enc(id)}`);
        return [h("h1", {}, "Workflow ", h("span", {class: "mono"}, w.id), " ", badge(w.state)),
          h("p", {}, w.name ? `${w.name} · ` : "", `${w.steps_completed}/${w.steps_total} steps completed, ${w.steps_failed} failed · created ${fmtTime(w.created_at)}`),
          Charts.workflowGraph(w),
          table([th("Step"), th("Type"), th("State"), th("Depends on"), th("Job")], w.steps.map((s) => h("tr", {},
            h("td", {}, s.id), h("td", {}, s.type), h("td", {}, badge(s.state)), h("td", {}, (s.depends_on || []).join(", ") || "—"),
            h("td", {}, s.job_id ? jobLink(s.job_id) : "—"))))];
      }
      const data = await api(`/workflows${query({limit: 50, cursor: params.get("cursor")})}`);
      const rows = data.items.map((w) => h("tr", {"data-workflow": w.id},
        h("td", {}, h("a", {class: "mono", href: `#/workflows/${enc(w.id)}`}, w.id)), h("td", {}, w.name || "—"), h("td", {}, badge(w.state)),
        h("td", {class: "num"}, `${w.steps_completed}/${w.steps_total}`), h("td", {class: "num"}, w.steps_failed), h("td", {}, timeCell(w.created_at))));
      return [h("h1", {}, "Workflows"), table([th("ID"), th("Name"), th("State"), th("Completed", "num"), th("Failed", "num"), th("Created")], rows, "No workflows."),
        pager(params, data.pagination, "#/workflows")];
    },
  });

  // ---- Workers ----

  function directive(id, to, label, cls) {
    return h("button", {type: "button", class: cls, "data-action": to, onclick: (e) => (to !== "terminate" || confirm(`Tell worker ${id} to stop?`)) &&
      act(e.target, () => api(`/workers/${enc(id)}/${to}`, {method: "POST"}), `Worker ${id}: ${to}`)}, label);
  }

  // jobsByWorker: worker id -> active jobs it holds (from one page of the active index), or null.
  function workerTable(items, compact, jobsByWorker) {
    const current = (w) => {
      const jobs = (jobsByWorker && jobsByWorker.get(w.id)) || [];
      return h("td", {class: "jobs"}, jobs.slice(0, 3).map((j) => h("div", {}, h("a", {class: "mono", href: `#/jobs/${enc(j.id)}`}, j.type))),
        jobs.length > 3 ? h("a", {href: `#/workers/${enc(w.id)}`}, `+${jobs.length - 3} more`) : null);
    };
    return table([th("Worker"), th("State"), th("Directive"), th("Reported active", "num"), jobsByWorker ? th("Current jobs") : null, th("Last heartbeat"), compact ? null : th("Actions")],
      items.map((w) => h("tr", {"data-worker": w.id},
        h("td", {}, h("a", {class: "mono", href: `#/workers/${enc(w.id)}`}, w.id)), h("td", {}, badge(w.state)), h("td", {}, badge(w.directive)),
        h("td", {class: "num"}, num(w.active_jobs)), jobsByWorker ? current(w) : null, h("td", {}, timeCell(w.last_heartbeat_at)),
        compact ? null : h("td", {}, h("div", {class: "actions", style: "margin:0; flex-wrap: nowrap"},
          w.directive === "running" ? directive(w.id, "quiet", "Quiet") : directive(w.id, "resume", "Resume"),
          directive(w.id, "terminate", "Terminate", "danger"))))), "No workers have sent a heartbeat.");
  }

  register("workers", {
    title: (id) => (id ? `Worker ${id}` : "Workers"),
    live: (event) => /started|completed|failed|worker/.test(event.type || ""),
    async render(id, params) {
      if (id) {
        const w = await api(`/workers/${enc(id)}`);
        return [h("h1", {}, "Worker ", h("span", {class: "mono"}, w.id), " ", badge(w.stale ? "stale" : w.state)),
          h("div", {class: "actions"}, directive(w.id, "quiet", "Quiet"), directive(w.id, "resume", "Resume"), directive(w.id, "terminate", "Terminate", "danger"),
            h("button", {type: "button", class: "danger", id: "deregister", onclick: (e) => confirm("Remove this worker from the registry?") &&
              act(e.target, () => api(`/workers/${enc(w.id)}${w.stale ? "" : "?force=true"}`, {method: "DELETE"}).then((r) => { go("#/workers"); return r; }), "Worker removed")}, "Deregister")),
          h("p", {}, `Directive: ${w.directive} · last heartbeat ${fmtTime(w.last_heartbeat_at)} · reports ${w.active_jobs} active jobs`),
          h("h2", {}, "Current jobs"), table(JOB_HEADERS, jobRows(w.jobs), "No active jobs.")];
      }
      const [data, active] = await Promise.all([
        api(`/workers${query({limit: 100, cursor: params.get("cursor")})}`), api("/jobs?state=active&limit=100"),
      ]);
      const byWorker = new Map();
      for (const job of active.items) if (job.worker_id) byWorker.set(job.worker_id, [...(byWorker.get(job.worker_id) || []), job]);
      return [h("h1", {}, "Workers"), workerTable(data.items, false, byWorker), pager(params, data.pagination, "#/workers")];
    },
  });

  OJS.start();
})();
