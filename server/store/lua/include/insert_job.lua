-- include: rank_score, notify, qcount, qminute, emit, stats, mcount
-- Store a new job and make it visible in its initial state.
-- k: job, available, delayed, queues, sequence, events, expiring (keys)
-- a: now, maxlen, id, type, queue, priority, state (available | scheduled | pending),
--    due (ms, scheduled only, else ''), expires (ms or ''), fields (flat field/value list),
--    ctx (the script context, for the queue counters)
-- Returns enqueued_at ('' unless available). The caller checks the id is free.
-- The hash has no enqueued_at when it equals created_at, and enqueued_at = '' until the job is available.
-- Queues registered by this script call: one HSETNX per queue, not per job.
local registered_queues = {}
local function reset_registered_queues()
  registered_queues = {}
end

-- Whether the flat field list sets created_at to `now`. Most jobs are available from the moment
-- they are created: their hash leaves enqueued_at out, and readers take created_at for it.
local function created_at_is(fields, now)
  for i = 1, #fields, 2 do
    if fields[i] == 'created_at' then
      return fields[i + 1] == now
    end
  end
  return false
end

local function insert_job(k, a)
  local fields = a.fields
  fields[#fields + 1] = 'state'
  fields[#fields + 1] = a.state
  local enqueued_at = ''
  if a.state == 'available' then
    enqueued_at = a.now
    if not created_at_is(fields, a.now) then
      fields[#fields + 1] = 'enqueued_at'
      fields[#fields + 1] = a.now
    end
  else
    -- Not available yet: '' says so (a missing enqueued_at means "the same as created_at").
    fields[#fields + 1] = 'enqueued_at'
    fields[#fields + 1] = ''
  end
  redis.call('HSET', k.job, unpack(fields))
  if a.state == 'available' then
    local sequence = next_sequence(k.sequence)
    redis.call('ZADD', k.available, rank_score(a.priority, sequence), a.id)
    notify(a.ctx, k.available)
  elseif a.state == 'scheduled' then
    redis.call('ZADD', k.delayed, a.due, a.id)
  end
  if a.expires ~= '' then
    redis.call('ZADD', k.expiring, a.expires, a.id)
  end
  if not registered_queues[a.queue] then
    registered_queues[a.queue] = true
    redis.call('HSETNX', k.queues, a.queue, a.now)
  end
  qcount(a.ctx, a.queue, nil, a.state, a.id, a.now)
  qminute(a.ctx, a.queue, a.now, 'enqueued')
  mcount(a.ctx, a.queue, a.type, 'enqueued')
  -- A job may carry its queue's limits (options.rate_limit); the latest one wins.
  if a.rate ~= '' then
    redis.call('HSET', a.ctx.qconf .. a.queue, 'max_per_second', a.rate)
  end
  if a.concurrency ~= '' then
    redis.call('HSET', a.ctx.qconf .. a.queue, 'concurrency', a.concurrency)
  end
  -- Priority 0 is left out of the event (the event reader puts it back): most jobs have it.
  local priority = tonumber(a.priority)
  emit(k.events, a.maxlen, 'job.enqueued', a.id, a.queue, a.type, a.state, a.now,
    priority ~= 0 and {priority = priority} or {})
  if a.state == 'scheduled' then
    emit(k.events, a.maxlen, 'job.scheduled', a.id, a.queue, a.type, a.state, a.now, {scheduled_at = tonumber(a.due)})
  end
  return enqueued_at
end
