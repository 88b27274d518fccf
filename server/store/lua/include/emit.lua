-- The event log. Events are buffered during a script call and written at its end
-- (flush_events, called by the wrapper every script runs in), in one XADD:
-- - one event is one entry, as it always was: type, job_id, queue, job_type, state, time, data;
-- - several events are one entry with `n` = their count, and for each of those fields either
--   the field itself (a value all the events share) or the field name plus "s" (a JSON array
--   with one value per event). Their data objects leave out job_type and queue, which the
--   reader puts back (server/store/events.py). A batch of 1,000 jobs costs one XADD, not 1,000.
-- MAXLEN counts entries.
local event_rows = {}
local event_key, event_maxlen = nil, nil
local EVENT_FIELDS = {'type', 'job_id', 'queue', 'job_type', 'state', 'time'}

-- Per-call state starts afresh (see server/store/scripts.py: a function library keeps it between calls).
local function reset_events()
  event_rows, event_key, event_maxlen = {}, nil, nil
end

local function flush_events()
  local rows = event_rows
  if #rows == 0 then
    return
  end
  event_rows = {}
  if #rows == 1 then
    local r = rows[1]
    r[7]['job_type'] = r[4]
    r[7]['queue'] = r[3]
    redis.call('XADD', event_key, 'MAXLEN', '~', event_maxlen, '*',
      'type', r[1], 'job_id', r[2], 'queue', r[3], 'job_type', r[4], 'state', r[5], 'time', r[6],
      'data', cjson.encode(r[7]))
    return
  end
  local args = {event_key, 'MAXLEN', '~', event_maxlen, '*', 'n', #rows}
  for column, name in ipairs(EVENT_FIELDS) do
    local first, shared = rows[1][column], true
    for i = 2, #rows do
      if rows[i][column] ~= first then
        shared = false
        break
      end
    end
    if shared then
      args[#args + 1] = name
      args[#args + 1] = first
    else
      local values = {}
      for i = 1, #rows do
        values[i] = rows[i][column]
      end
      args[#args + 1] = name .. 's'
      args[#args + 1] = cjson.encode(values)
    end
  end
  local data = {}
  for i = 1, #rows do
    data[i] = rows[i][7]
  end
  args[#args + 1] = 'datas'
  args[#args + 1] = cjson.encode(data)
  redis.call('XADD', unpack(args))
end

-- Log one event (written when the script call ends). `data` is a flat table of scalars.
local function emit(events_key, maxlen, event_type, job_id, queue, job_type, state, now, data)
  if event_key ~= nil and event_key ~= events_key then
    flush_events()
  end
  event_key, event_maxlen = events_key, maxlen
  if type(now) == 'number' then
    now = string.format('%d', now)
  end
  event_rows[#event_rows + 1] = {event_type, job_id, queue, job_type, state, now, data}
end
