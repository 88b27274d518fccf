-- Shared helpers, prepended to every script at load time.

-- Exact integer rendering: Redis converts Lua numbers with %.14g, which
-- would round scores and timestamps above 1e14.
local function int_str(n)
  return string.format('%.0f', n)
end

-- Ordering score within a queue: higher priority first, then FIFO.
-- (100 - priority) * 2^44 + sequence stays below 2^53, so it is exact.
local function rank_score(priority, sequence)
  return int_str((100 - tonumber(priority)) * 17592186044416 + sequence)
end

-- The job hash as a flat array, plus its error history. Pass has_errors = false
-- when the job is known to have none (no `error` field), to skip reading it.
local function read_job(job_key, errors_key, has_errors)
  if has_errors == false then
    return {redis.call('HGETALL', job_key), {}}
  end
  return {redis.call('HGETALL', job_key), redis.call('LRANGE', errors_key, 0, -1)}
end

-- Append one entry to the event log. `data` is a flat table of scalars.
local function emit(events_key, maxlen, event_type, job_id, queue, job_type, state, now, data)
  data['job_type'] = job_type
  data['queue'] = queue
  redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*',
    'type', event_type, 'job_id', job_id, 'queue', queue, 'job_type', job_type,
    'state', state, 'time', now, 'data', cjson.encode(data))
end

-- Wake waiting workers (long polls, job streams): one message per queue and script
-- call, naming the queue's available set, on the ctx.notify channel.
local notified = {}
local function notify(ctx, available_key)
  if ctx and ctx.notify and not notified[available_key] then
    notified[available_key] = true
    redis.call('PUBLISH', ctx.notify, available_key)
  end
end

-- Put a job at the back of its priority in its queue.
local function make_available(job_key, id, available_key, sequence_key, priority, now, ctx)
  local sequence = redis.call('INCR', sequence_key)
  redis.call('ZADD', available_key, rank_score(priority or 0, sequence), id)
  redis.call('HSET', job_key, 'state', 'available', 'enqueued_at', now)
  redis.call('HDEL', job_key, 'next_attempt_at', 'lease_expires_at', 'exec_deadline')
  notify(ctx, available_key)
end

-- Move due scheduled/retryable jobs of one queue to available.


-- Terminal jobs expire after their retention period (0: kept). With the script
-- context, a unique job also gives up its uniqueness lock here, unless its policy
-- counts this final state as a duplicate too. `known` (optional) carries what the
-- caller already read: id, fp (unique_fp), states (unique_states), state, has_errors.
local function retain(job_key, errors_key, ttl_ms, ctx, known)
  local ttl = tonumber(ttl_ms) or 0
  if ttl > 0 then
    redis.call('PEXPIRE', job_key, ttl)
    if not known or known.has_errors then
      redis.call('PEXPIRE', errors_key, ttl)
    end
  end
  if ctx then
    local f
    if known then
      f = {known.id, known.fp, known.states, known.state}
    else
      f = redis.call('HMGET', job_key, 'id', 'unique_fp', 'unique_states', 'state')
    end
    if f[2] and f[2] ~= '' and not string.find(',' .. (f[3] or '') .. ',', ',' .. f[4] .. ',', 1, true) then
      local lock = ctx.unique .. f[2]
      if redis.call('GET', lock) == f[1] then
        redis.call('DEL', lock)
      end
    end
  end
end

-- Lease deadline and execution deadline folded into the active set's score:
-- the reaper wakes at whichever comes first.
local function active_score(lease_deadline, exec_deadline)
  local due = tonumber(lease_deadline)
  local exec = tonumber(exec_deadline)
  if exec and exec < due then
    due = exec
  end
  return int_str(due)
end

-- ---- Per-queue statistics ----
-- ctx.counts .. queue is a hash of gauges (jobs now scheduled, pending, active,
-- retryable, dead-lettered) and totals (jobs that ever completed, were discarded
-- or cancelled); available jobs are counted by their sorted set instead.
-- ctx.minutes .. queue .. ':' .. minute holds per-minute activity for the last two hours.
local GAUGES = {scheduled = true, pending = true, active = true, retryable = true, dead = true}
local TOTALS = {completed = true, discarded = true, cancelled = true}

-- Counter updates are summed per script call and written once at its end
-- (flush_stats, called by the wrapper every script runs in): a batch of 100
-- jobs costs a few HINCRBYs instead of several per job.
local stat_deltas = {}
local stat_ttls = {}

local function bump(key, field, amount)
  local fields = stat_deltas[key]
  if not fields then
    fields = {}
    stat_deltas[key] = fields
  end
  fields[field] = (fields[field] or 0) + amount
end

local function flush_stats()
  for key, fields in pairs(stat_deltas) do
    for field, amount in pairs(fields) do
      if amount ~= 0 then
        redis.call('HINCRBY', key, field, amount)
      end
    end
    if stat_ttls[key] then
      redis.call('PEXPIRE', key, stat_ttls[key])
    end
  end
  stat_deltas, stat_ttls = {}, {}
end

local function qcount(ctx, queue, from, to)
  local key = ctx.counts .. queue
  if from and GAUGES[from] then
    bump(key, from, -1)
  end
  if to and (GAUGES[to] or TOTALS[to]) then
    bump(key, to, 1)
  end
end

local function qminute(ctx, queue, now, field, sum_field, amount)
  local key = ctx.minutes .. queue .. ':' .. math.floor(tonumber(now) / 60000)
  bump(key, field, 1)
  if sum_field and amount then
    bump(key, sum_field, math.floor(amount))
  end
  stat_ttls[key] = 7200000
end

local function promote_due(ctx, available_key, delayed_key, sequence_key, now, limit)
  local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', delayed_key, id)
    local job_key = ctx.job .. id
    local f = redis.call('HMGET', job_key, 'state', 'priority', 'queue')
    if f[1] == 'scheduled' or f[1] == 'retryable' then
      make_available(job_key, id, available_key, sequence_key, f[2], now, ctx)
      qcount(ctx, f[3], f[1], 'available')
    end
  end
  return #due
end

-- ---- Workflow engine ----
-- A workflow is a hash (state, counters) and a node hash with, per node i:
-- k:i kind (step | on_success | on_failure | on_complete), j:i its job id,
-- p:i dependencies and d:i dependents (comma-separated indices), w:i dependencies
-- not yet finished, s:i node state (waiting | ready | completed | failed | cancelled | skipped).
-- Member jobs of nodes still waiting sit in `pending` until released.
-- ctx (decoded from JSON): prefixes wf, nodes, job, errors, available, delayed and
-- retention ttl_done / ttl_cancelled (ms).

local function csv(text)
  local out = {}
  if text and text ~= '' then
    for item in string.gmatch(text, '[^,]+') do
      out[#out + 1] = item
    end
  end
  return out
end

-- Cancel a member job that has not finished (used for nodes that will never run).
local function wf_cancel_job(ctx, job_id, now, events, maxlen)
  local job_key = ctx.job .. job_id
  local f = redis.call('HMGET', job_key, 'state', 'type', 'queue')
  if not f[1] or f[1] == 'completed' or f[1] == 'cancelled' or f[1] == 'discarded' then
    return false
  end
  redis.call('ZREM', ctx.available .. f[3], job_id)
  redis.call('ZREM', ctx.delayed .. f[3], job_id)
  redis.call('ZREM', ctx.active, job_id)
  redis.call('ZREM', ctx.expiring, job_id)
  redis.call('HSET', job_key, 'state', 'cancelled', 'cancelled_at', now)
  redis.call('HDEL', job_key, 'lease_expires_at', 'exec_deadline', 'next_attempt_at')
  qcount(ctx, f[3], f[1], 'cancelled')
  retain(job_key, ctx.errors .. job_id, ctx.ttl_cancelled, ctx)
  emit(events, maxlen, 'job.cancelled', job_id, f[3], f[2], 'cancelled', now, {previous_state = f[1], reason = 'workflow'})
  return true
end

-- Release a node whose dependencies are done: hand it their results and make its job available.
local function wf_release(ctx, nodes_key, node, now, events, maxlen, sequence_key)
  local job_id = redis.call('HGET', nodes_key, 'j:' .. node)
  local results = {}
  for _, dependency in ipairs(csv(redis.call('HGET', nodes_key, 'p:' .. node))) do
    local dependency_job = redis.call('HGET', nodes_key, 'j:' .. dependency)
    results[#results + 1] = redis.call('HGET', ctx.job .. dependency_job, 'result') or 'null'
  end
  local job_key = ctx.job .. job_id
  local f = redis.call('HMGET', job_key, 'state', 'type', 'queue', 'priority', 'scheduled_at')
  redis.call('HSET', nodes_key, 's:' .. node, 'ready')
  if f[1] ~= 'pending' then
    return
  end
  redis.call('HSET', job_key, 'parent_results', '[' .. table.concat(results, ',') .. ']')
  -- A step with its own delay waits for it after its dependencies are done.
  if f[5] and tonumber(f[5]) > tonumber(now) then
    redis.call('HSET', job_key, 'state', 'scheduled')
    redis.call('ZADD', ctx.delayed .. f[3], f[5], job_id)
    qcount(ctx, f[3], 'pending', 'scheduled')
    return
  end
  make_available(job_key, job_id, ctx.available .. f[3], sequence_key, f[4], now, ctx)
  qcount(ctx, f[3], 'pending', 'available')
  emit(events, maxlen, 'job.enqueued', job_id, f[3], f[2], 'available', now, {priority = tonumber(f[4]) or 0})
end

-- Record that node `start` finished with `outcome` and move the workflow on:
-- release dependents whose dependencies all completed, cancel those that can
-- no longer run, fire or skip batch callbacks, and finish the workflow when
-- every node is done.
local function wf_settle(ctx, workflow_id, start, outcome, now, events, maxlen, sequence_key)
  local wf_key = ctx.wf .. workflow_id
  local nodes_key = ctx.nodes .. workflow_id
  local work = {{start, outcome}}
  local i = 1
  while i <= #work do
    local node, result = work[i][1], work[i][2]
    i = i + 1
    local current = redis.call('HGET', nodes_key, 's:' .. node)
    if current == 'waiting' or current == 'ready' then
      redis.call('HSET', nodes_key, 's:' .. node, result)
      local kind = redis.call('HGET', nodes_key, 'k:' .. node)
      local job_id = redis.call('HGET', nodes_key, 'j:' .. node)
      if result == 'cancelled' or result == 'skipped' then
        wf_cancel_job(ctx, job_id, now, events, maxlen)
      end
      redis.call('HINCRBY', wf_key, 'done', 1)
      if kind == 'step' then
        redis.call('HINCRBY', wf_key, result == 'completed' and 'completed' or 'failed', 1)
      elseif result == 'failed' or result == 'cancelled' then
        redis.call('HINCRBY', wf_key, 'callbacks_failed', 1)
      end
      emit(events, maxlen, result == 'completed' and 'workflow.step_completed' or 'workflow.step_failed',
        job_id, '', '', result, now, {workflow_id = workflow_id, step = tonumber(node), kind = kind})
      for _, dependent in ipairs(csv(redis.call('HGET', nodes_key, 'd:' .. node))) do
        local dependent_kind = redis.call('HGET', nodes_key, 'k:' .. dependent)
        if dependent_kind == 'step' then
          if result == 'completed' then
            local left = redis.call('HINCRBY', nodes_key, 'w:' .. dependent, -1)
            if left == 0 and redis.call('HGET', nodes_key, 's:' .. dependent) == 'waiting' then
              wf_release(ctx, nodes_key, dependent, now, events, maxlen, sequence_key)
            end
          else
            work[#work + 1] = {dependent, 'cancelled'}
          end
        elseif redis.call('HINCRBY', nodes_key, 'w:' .. dependent, -1) == 0
            and redis.call('HGET', nodes_key, 's:' .. dependent) == 'waiting' then
          local failed = tonumber(redis.call('HGET', wf_key, 'failed')) or 0
          if dependent_kind == 'on_complete' or (dependent_kind == 'on_success' and failed == 0)
              or (dependent_kind == 'on_failure' and failed > 0) then
            wf_release(ctx, nodes_key, dependent, now, events, maxlen, sequence_key)
          else
            work[#work + 1] = {dependent, 'skipped'}
          end
        end
      end
    end
  end
  local w = redis.call('HMGET', wf_key, 'done', 'node_count', 'failed', 'callbacks_failed', 'state')
  if w[5] == 'running' and tonumber(w[1]) >= tonumber(w[2]) then
    local final = (tonumber(w[3]) > 0 or tonumber(w[4]) > 0) and 'failed' or 'completed'
    redis.call('HSET', wf_key, 'state', final, 'completed_at', now)
    emit(events, maxlen, 'workflow.' .. final, '', '', '', final, now, {workflow_id = workflow_id})
    retain(wf_key, nodes_key, ctx.ttl_done)
  end
end

-- Hook for every transition that ends a job: moves its workflow on, if it has one.
local function wf_job_done(ctx, job_key, now, events, maxlen, sequence_key)
  local f = redis.call('HMGET', job_key, 'workflow_id', 'wf_node', 'state')
  if not f[1] or f[1] == '' then
    return
  end
  if redis.call('HGET', ctx.wf .. f[1], 'state') ~= 'running' then
    return
  end
  wf_settle(ctx, f[1], f[2], f[3] == 'completed' and 'completed' or 'failed', now, events, maxlen, sequence_key)
end

-- Record a failure of an active job and apply its retry policy: retryable
-- after the policy's backoff, or discarded (dead-lettered if the policy says
-- so) when attempts are used up, the error is non-retryable or `give_up`.
-- c: job_key, errors_key, id, now, events, maxlen, dead_key, delayed_prefix,
--    history_cap, jitter, error_tail (error JSON object without "attempt"),
--    error_type, code, message, give_up, ttl_discarded, ttl_dead,
--    sequence (key) and wfctx (workflow context) for moving a workflow on
-- Returns the new state.
local function fail_active(c)
  local f = redis.call('HMGET', c.job_key, 'type', 'queue', 'attempt', 'r_max', 'r_init', 'r_coef', 'r_maxi',
    'r_jit', 'r_strat', 'r_nre', 'r_exh', 'started_at')
  local job_type, queue = f[1], f[2]
  local attempt = tonumber(f[3]) or 0
  local now = tonumber(c.now)

  local error_json
  if c.error_tail == '{}' then
    error_json = '{"attempt":' .. attempt .. '}'
  else
    error_json = '{"attempt":' .. attempt .. ',' .. string.sub(c.error_tail, 2)
  end
  redis.call('HSET', c.job_key, 'error', error_json)
  redis.call('RPUSH', c.errors_key, error_json)
  redis.call('LTRIM', c.errors_key, -tonumber(c.history_cap), -1)

  local function non_retryable(error_type)
    if error_type == '' or not f[10] or f[10] == '' then
      return false
    end
    for pattern in string.gmatch(f[10], '[^\n]+') do
      if pattern == error_type then
        return true
      end
      local prefix = string.sub(pattern, 1, -2)
      if string.sub(pattern, -2) == '.*' and string.sub(error_type, 1, #prefix) == prefix then
        return true
      end
    end
    return false
  end

  -- Same formulas as server.domain.retry.backoff_delay_ms.
  local function backoff(n)
    local initial = tonumber(f[5]) or 1000
    local coef = tonumber(f[6]) or 2
    local cap = tonumber(f[7]) or 300000
    local strategy = f[9] or 'exponential'
    local raw
    if strategy == 'linear' then
      raw = initial * n
    elseif strategy == 'constant' then
      raw = initial
    elseif strategy == 'polynomial' then
      raw = initial * (n ^ coef)
    else
      raw = initial * (coef ^ (n - 1))
    end
    local delay = math.min(raw, cap)
    -- Jitter is on unless the policy turned it off (no field: the default policy).
    if f[8] ~= '0' then
      delay = math.min(delay * tonumber(c.jitter), cap)
    end
    return math.floor(delay)
  end

  local max_attempts = tonumber(f[4]) or 3
  local give_up = c.give_up or non_retryable(c.error_type) or (max_attempts > 0 and attempt >= max_attempts)
  local duration = now - (tonumber(f[12]) or now)
  redis.call('HDEL', c.job_key, 'lease_expires_at', 'exec_deadline')
  qminute(c.wfctx, queue, c.now, 'failed', 'failed_duration_ms', duration)
  emit(c.events, c.maxlen, 'job.failed', c.id, queue, job_type, give_up and 'discarded' or 'retryable', c.now,
    {attempt = attempt, duration_ms = duration,
     error = {code = c.code, message = c.message, type = c.error_type, retryable = not give_up}})

  if give_up then
    redis.call('HSET', c.job_key, 'state', 'discarded', 'discarded_at', c.now, 'completed_at', c.now)
    redis.call('HDEL', c.job_key, 'next_attempt_at', 'retry_delay_ms')
    local dead = f[11] == 'dead_letter'
    qcount(c.wfctx, queue, 'active', 'discarded')
    if dead then
      qcount(c.wfctx, queue, nil, 'dead')
      redis.call('ZADD', c.dead_key, c.now, c.id)
      retain(c.job_key, c.errors_key, c.ttl_dead, c.wfctx)
    else
      retain(c.job_key, c.errors_key, c.ttl_discarded, c.wfctx)
    end
    emit(c.events, c.maxlen, 'job.discarded', c.id, queue, job_type, 'discarded', c.now,
      {total_attempts = attempt, dead_letter = dead, last_error = {code = c.code, message = c.message}})
    wf_job_done(c.wfctx, c.job_key, c.now, c.events, c.maxlen, c.sequence)
    return 'discarded'
  end
  local delay = backoff(attempt)
  local due = int_str(now + delay)
  redis.call('HSET', c.job_key, 'state', 'retryable', 'next_attempt_at', due, 'retry_delay_ms', delay)
  qcount(c.wfctx, queue, 'active', 'retryable')
  redis.call('ZADD', c.delayed_prefix .. queue, due, c.id)
  emit(c.events, c.maxlen, 'job.retrying', c.id, queue, job_type, 'retryable', c.now,
    {attempt = attempt, max_attempts = max_attempts, next_retry_at = tonumber(due), retry_delay_ms = delay})
  return 'retryable'
end

-- Checks that the caller holds the lease of an active job. `f` holds the
-- job's state, worker_id and lease_token. Returns nil or an error reply.
local function check_holder(f, worker, token)
  if not f[1] then
    return {'not_found'}
  end
  if f[1] ~= 'active' then
    return {'conflict', f[1]}
  end
  if worker ~= '' and f[2] and f[2] ~= '' and f[2] ~= worker then
    return {'not_owner', f[2]}
  end
  if token ~= '' and token ~= (f[3] or '') then
    return {'stale_lease', f[3] or ''}
  end
  return nil
end

-- A job that did not start before its expires_at is discarded, never delivered.
-- It gets an "expired" error but no completed_at (it never ran).
local function expire_job(job_key, errors_key, id, now, events, maxlen, available_prefix, delayed_prefix, ttl,
    wfctx, sequence_key)
  local f = redis.call('HMGET', job_key, 'type', 'queue', 'expires_at', 'created_at', 'attempt', 'state')
  qcount(wfctx, f[2], f[6], 'discarded')
  redis.call('ZREM', available_prefix .. f[2], id)
  redis.call('ZREM', delayed_prefix .. f[2], id)
  local error_json = cjson.encode({attempt = tonumber(f[5]) or 0, code = 'expired', type = 'expired',
    message = 'the job expired before it started', retryable = false, occurred_at = tonumber(now)})
  redis.call('HSET', job_key, 'state', 'discarded', 'discarded_at', now, 'error', error_json)
  redis.call('HDEL', job_key, 'next_attempt_at')
  redis.call('RPUSH', errors_key, error_json)
  retain(job_key, errors_key, ttl, wfctx)
  emit(events, maxlen, 'job.expired', id, f[2], f[1], 'discarded', now,
    {expired_at = tonumber(f[3]) or 0, created_at = tonumber(f[4]) or 0})
  wf_job_done(wfctx, job_key, now, events, maxlen, sequence_key)
end

-- Store a new job and make it visible in its initial state.
-- k: job, available, delayed, queues, sequence, events, expiring (keys)
-- a: now, maxlen, id, type, queue, priority, state (available | scheduled | pending),
--    due (ms, scheduled only, else ''), expires (ms or ''), fields (flat field/value list),
--    ctx (the script context, for the queue counters)
-- Returns enqueued_at ('' unless available). The caller checks the id is free.
local function insert_job(k, a)
  local fields = a.fields
  fields[#fields + 1] = 'state'
  fields[#fields + 1] = a.state
  local enqueued_at = ''
  if a.state == 'available' then
    enqueued_at = a.now
    fields[#fields + 1] = 'enqueued_at'
    fields[#fields + 1] = a.now
  end
  redis.call('HSET', k.job, unpack(fields))
  if a.state == 'available' then
    local sequence = redis.call('INCR', k.sequence)
    redis.call('ZADD', k.available, rank_score(a.priority, sequence), a.id)
    notify(a.ctx, k.available)
  elseif a.state == 'scheduled' then
    redis.call('ZADD', k.delayed, a.due, a.id)
  end
  if a.expires ~= '' then
    redis.call('ZADD', k.expiring, a.expires, a.id)
  end
  redis.call('HSETNX', k.queues, a.queue, a.now)
  qcount(a.ctx, a.queue, nil, a.state)
  -- A job may carry its queue's limits (options.rate_limit); the latest one wins.
  if a.rate ~= '' then
    redis.call('HSET', a.ctx.qconf .. a.queue, 'max_per_second', a.rate)
  end
  if a.concurrency ~= '' then
    redis.call('HSET', a.ctx.qconf .. a.queue, 'concurrency', a.concurrency)
  end
  emit(k.events, a.maxlen, 'job.enqueued', a.id, a.queue, a.type, a.state, a.now, {priority = tonumber(a.priority)})
  if a.state == 'scheduled' then
    emit(k.events, a.maxlen, 'job.scheduled', a.id, a.queue, a.type, a.state, a.now, {scheduled_at = tonumber(a.due)})
  end
  return enqueued_at
end

-- A job to insert, from the JSON array JobStore._insert_entry builds (all strings):
-- id, type, queue, priority, state, due, expires, rate, concurrency, unique fingerprint,
-- unique on_conflict, unique states (comma-separated), unique period (ms), then the
-- hash's field/value pairs.
local JOB_HEADER = 13
local function job_from_list(list, ctx, now, maxlen)
  local fields = {}
  for i = JOB_HEADER + 1, #list do
    fields[#fields + 1] = list[i]
  end
  return {now = now, maxlen = maxlen, ctx = ctx, id = list[1], type = list[2],
    queue = list[3], priority = list[4], state = list[5], due = list[6],
    expires = list[7], rate = list[8], concurrency = list[9],
    unique_fp = list[10], unique_action = list[11], unique_states = list[12],
    unique_period = list[13], fields = fields}
end

-- Uniqueness check of a job about to be inserted. Returns nil to go ahead (after
-- cancelling the job it replaces, if any), or {'unique_conflict' | 'unique_existing',
-- existing id, existing state} when the existing job stands.
local function unique_check(ctx, a, events, maxlen)
  if a.unique_fp == '' then
    return nil
  end
  local existing = redis.call('GET', ctx.unique .. a.unique_fp)
  if not existing then
    return nil
  end
  local existing_key = ctx.job .. existing
  local state = redis.call('HGET', existing_key, 'state')
  if not state or not string.find(',' .. a.unique_states .. ',', ',' .. state .. ',', 1, true) then
    return nil
  end
  if a.unique_action == 'reject' then
    return {'unique_conflict', existing, state}
  end
  if a.unique_action == 'ignore' then
    return {'unique_existing', existing, state}
  end
  if a.unique_action == 'replace_except_schedule' and state == 'scheduled' then
    a.state = 'scheduled'
    a.due = redis.call('HGET', existing_key, 'scheduled_at')
    a.fields[#a.fields + 1] = 'scheduled_at'
    a.fields[#a.fields + 1] = a.due
  end
  wf_cancel_job(ctx, existing, a.now, events, maxlen)
  return nil
end

-- Take the uniqueness lock for a job just inserted (for its period, or until it ends).
local function unique_lock(ctx, a)
  if a.unique_fp == '' then
    return
  end
  if a.unique_period ~= '' then
    redis.call('SET', ctx.unique .. a.unique_fp, a.id, 'PX', a.unique_period)
  else
    redis.call('SET', ctx.unique .. a.unique_fp, a.id)
  end
end

-- Complete an active job held by the caller. `c` carries the job's keys and id,
-- the shared keys (active, expiring, events, sequence), now, maxlen, worker,
-- token, has_result/result, the completed-job retention and the script context.
-- Returns nil when done, or the refusal from check_holder.
local function ack_active(c)
  local job_key = c.job_key
  local f = redis.call('HMGET', job_key, 'state', 'worker_id', 'lease_token', 'type', 'queue', 'started_at', 'attempt',
    'workflow_id', 'unique_fp', 'unique_states', 'error')
  local refused = check_holder(f, c.worker, c.token)
  if refused then
    return refused
  end
  if c.has_result then
    redis.call('HSET', job_key, 'state', 'completed', 'completed_at', c.now, 'result', c.result)
  else
    redis.call('HSET', job_key, 'state', 'completed', 'completed_at', c.now)
  end
  redis.call('HDEL', job_key, 'error', 'lease_expires_at', 'exec_deadline', 'next_attempt_at')
  redis.call('ZREM', c.active, c.id)
  local duration = tonumber(c.now) - (tonumber(f[6]) or tonumber(c.now))
  emit(c.events, c.maxlen, 'job.completed', c.id, f[5], f[4], 'completed', c.now,
    {attempt = tonumber(f[7]) or 0, duration_ms = duration})
  local wfctx = c.wfctx
  qcount(wfctx, f[5], 'active', 'completed')
  qminute(wfctx, f[5], c.now, 'completed', 'duration_ms', duration)
  if f[8] and f[8] ~= '' then
    wf_job_done(wfctx, job_key, c.now, c.events, c.maxlen, c.sequence)
  end
  local has_errors = f[11] ~= false
  retain(job_key, c.errors_key, c.ttl, wfctx,
    {id = c.id, fp = f[9], states = f[10], state = 'completed', has_errors = has_errors})
  c.state, c.has_errors = 'completed', has_errors
  return nil
end

-- Record a failure of an active job held by the caller: requeue it, or apply its
-- retry policy (fail_active). `c` carries what ack_active's does, plus the error
-- (error_tail, error_type, code, message, give_up), requeue, jitter, dead_key,
-- history_cap and the discarded/dead retentions.
-- Returns nil when done, or the refusal from check_holder.
local function nack_active(c)
  local job_key = c.job_key
  local f = redis.call('HMGET', job_key, 'state', 'worker_id', 'lease_token', 'type', 'queue', 'priority', 'attempt')
  local refused = check_holder(f, c.worker, c.token)
  if refused then
    return refused
  end
  redis.call('ZREM', c.active, c.id)
  local wfctx = c.wfctx
  if c.requeue then
    make_available(job_key, c.id, wfctx.available .. f[5], c.sequence, f[6], c.now, wfctx)
    qcount(wfctx, f[5], 'active', 'available')
    redis.call('HDEL', job_key, 'retry_delay_ms')
    local attempt = tonumber(f[7]) or 0
    local reason = 'requeue'
    if c.undelivered and attempt > 0 then
      attempt, reason = attempt - 1, 'undelivered'
      redis.call('HSET', job_key, 'attempt', attempt)
    end
    emit(c.events, c.maxlen, 'job.requeued', c.id, f[5], f[4], 'available', c.now,
      {attempt = attempt, reason = reason})
    c.state = 'available'
    return nil
  end
  c.state = fail_active({
    job_key = job_key, errors_key = c.errors_key, id = c.id, now = c.now, events = c.events, maxlen = c.maxlen,
    dead_key = c.dead_key, delayed_prefix = wfctx.delayed, history_cap = c.history_cap, jitter = c.jitter,
    error_tail = c.error_tail, error_type = c.error_type, code = c.code, message = c.message,
    give_up = c.give_up, ttl_discarded = c.ttl_discarded, ttl_dead = c.ttl_dead,
    sequence = c.sequence, wfctx = wfctx,
  })
  return nil
end
