-- Append one entry to the event log. `data` is a flat table of scalars.
local function emit(events_key, maxlen, event_type, job_id, queue, job_type, state, now, data)
  data['job_type'] = job_type
  data['queue'] = queue
  redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*',
    'type', event_type, 'job_id', job_id, 'queue', queue, 'job_type', job_type,
    'state', state, 'time', now, 'data', cjson.encode(data))
end
