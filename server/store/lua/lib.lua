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

-- The job hash as a flat array, plus its error history.
local function read_job(job_key, errors_key)
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

-- Put a job at the back of its priority in its queue.
local function make_available(job_key, id, available_key, sequence_key, priority, now)
  local sequence = redis.call('INCR', sequence_key)
  redis.call('ZADD', available_key, rank_score(priority or 0, sequence), id)
  redis.call('HSET', job_key, 'state', 'available', 'enqueued_at', now)
  redis.call('HDEL', job_key, 'next_attempt_at', 'lease_expires_at', 'exec_deadline')
end

-- Move due scheduled/retryable jobs of one queue to available.
local function promote_due(available_key, delayed_key, sequence_key, job_prefix, now, limit)
  local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', delayed_key, id)
    local job_key = job_prefix .. id
    local f = redis.call('HMGET', job_key, 'state', 'priority')
    if f[1] == 'scheduled' or f[1] == 'retryable' then
      make_available(job_key, id, available_key, sequence_key, f[2], now)
    end
  end
  return #due
end

-- Terminal jobs expire after their retention period (0: kept).
local function retain(job_key, errors_key, ttl_ms)
  local ttl = tonumber(ttl_ms) or 0
  if ttl > 0 then
    redis.call('PEXPIRE', job_key, ttl)
    redis.call('PEXPIRE', errors_key, ttl)
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

-- Record a failure of an active job and apply its retry policy: retryable
-- after the policy's backoff, or discarded (dead-lettered if the policy says
-- so) when attempts are used up, the error is non-retryable or `give_up`.
-- c: job_key, errors_key, id, now, events, maxlen, dead_key, delayed_prefix,
--    history_cap, jitter, error_tail (error JSON object without "attempt"),
--    error_type, code, message, give_up, ttl_discarded, ttl_dead
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
    if f[8] == '1' then
      delay = math.min(delay * tonumber(c.jitter), cap)
    end
    return math.floor(delay)
  end

  local max_attempts = tonumber(f[4]) or 3
  local give_up = c.give_up or non_retryable(c.error_type) or (max_attempts > 0 and attempt >= max_attempts)
  local duration = now - (tonumber(f[12]) or now)
  redis.call('HDEL', c.job_key, 'lease_expires_at', 'exec_deadline')
  emit(c.events, c.maxlen, 'job.failed', c.id, queue, job_type, give_up and 'discarded' or 'retryable', c.now,
    {attempt = attempt, duration_ms = duration,
     error = {code = c.code, message = c.message, type = c.error_type, retryable = not give_up}})

  if give_up then
    redis.call('HSET', c.job_key, 'state', 'discarded', 'discarded_at', c.now, 'completed_at', c.now)
    redis.call('HDEL', c.job_key, 'next_attempt_at', 'retry_delay_ms')
    local dead = f[11] == 'dead_letter'
    if dead then
      redis.call('ZADD', c.dead_key, c.now, c.id)
      retain(c.job_key, c.errors_key, c.ttl_dead)
    else
      retain(c.job_key, c.errors_key, c.ttl_discarded)
    end
    emit(c.events, c.maxlen, 'job.discarded', c.id, queue, job_type, 'discarded', c.now,
      {total_attempts = attempt, dead_letter = dead, last_error = {code = c.code, message = c.message}})
    return 'discarded'
  end
  local delay = backoff(attempt)
  local due = int_str(now + delay)
  redis.call('HSET', c.job_key, 'state', 'retryable', 'next_attempt_at', due, 'retry_delay_ms', delay)
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
local function expire_job(job_key, errors_key, id, now, events, maxlen, available_prefix, delayed_prefix, ttl)
  local f = redis.call('HMGET', job_key, 'type', 'queue', 'expires_at', 'created_at', 'attempt')
  redis.call('ZREM', available_prefix .. f[2], id)
  redis.call('ZREM', delayed_prefix .. f[2], id)
  local error_json = cjson.encode({attempt = tonumber(f[5]) or 0, code = 'expired', type = 'expired',
    message = 'the job expired before it started', retryable = false, occurred_at = tonumber(now)})
  redis.call('HSET', job_key, 'state', 'discarded', 'discarded_at', now, 'error', error_json)
  redis.call('HDEL', job_key, 'next_attempt_at')
  redis.call('RPUSH', errors_key, error_json)
  retain(job_key, errors_key, ttl)
  emit(events, maxlen, 'job.expired', id, f[2], f[1], 'discarded', now,
    {expired_at = tonumber(f[3]) or 0, created_at = tonumber(f[4]) or 0})
end

-- Store a new job and make it visible in its initial state.
-- k: job, available, delayed, queues, sequence, events, expiring (keys)
-- a: now, maxlen, id, type, queue, priority, state (available | scheduled | pending),
--    due (ms, scheduled only, else ''), expires (ms or ''), fields (flat field/value list)
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
  elseif a.state == 'scheduled' then
    redis.call('ZADD', k.delayed, a.due, a.id)
  end
  if a.expires ~= '' then
    redis.call('ZADD', k.expiring, a.expires, a.id)
  end
  redis.call('HSETNX', k.queues, a.queue, a.now)
  emit(k.events, a.maxlen, 'job.enqueued', a.id, a.queue, a.type, a.state, a.now, {priority = tonumber(a.priority)})
  if a.state == 'scheduled' then
    emit(k.events, a.maxlen, 'job.scheduled', a.id, a.queue, a.type, a.state, a.now, {scheduled_at = tonumber(a.due)})
  end
  return enqueued_at
end
