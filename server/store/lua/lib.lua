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
