-- settle_batch: ack or nack many active jobs, each entry on its own.
-- include: status, ack_active, nack_active, read_job, script_context
-- KEYS[1] active zset  KEYS[2] event stream  KEYS[3] sequence counter
-- KEYS[4] dead-letter zset  KEYS[5] expiring zset
-- ARGV[1] now (ms)  ARGV[2] event log max length
-- ARGV[3] retention of completed jobs (ms)  ARGV[4] of discarded jobs  ARGV[5] of dead-lettered jobs
-- ARGV[6] error history cap  ARGV[7] '1' to return each job in full, '0' for its state only
-- ARGV[8] script context (JSON, see server/store/context.py; job and errors keys come from its prefixes)
-- ARGV[9] the entries: a JSON array of string arrays, each
--   job id, 'ack'|'nack', worker id or '', lease token or '', then
--   ack: '1' if a result is given, result JSON;
--   nack: error JSON object without "attempt", error type, retryable ('0' = never, '' = per policy),
--         requeue '1'|'0', jitter factor, error code, error message,
--         undelivered '1'|'0' (with requeue: the claim's attempt is given back).
-- Pre:  none; each entry's job must be active and held by its worker and lease token.
-- Post: an accepted ack completes its job (include/ack_active.lua); an accepted nack
--       requeues it or applies its retry policy (nack_active). Single acks and nacks
--       are one-entry calls of this script.
-- Returns one reply per entry, in order: {'ok', job or state} | {'not_found'} | {'conflict', state}
--       | {'not_owner', worker} | {'stale_lease', current token}.
local wfctx = script_context(ARGV[8])
wfctx.active, wfctx.expiring = KEYS[1], KEYS[5]
local full = ARGV[7] == '1'
local replies = {}
for _, e in ipairs(cjson.decode(ARGV[9])) do
  local id = e[1]
  local job_key, errors_key = wfctx.job .. id, wfctx.errors .. id
  local c = {
    job_key = job_key, errors_key = errors_key, id = id, now = ARGV[1], maxlen = ARGV[2],
    active = KEYS[1], events = KEYS[2], sequence = KEYS[3], dead_key = KEYS[4],
    worker = e[3], token = e[4], wfctx = wfctx,
  }
  local refused
  if e[2] == 'ack' then
    c.has_result, c.result, c.ttl = e[5] == '1', e[6], ARGV[3]
    refused = ack_active(c)
  else
    c.error_tail, c.error_type = e[5], e[6]
    c.give_up, c.requeue = e[7] == '0', e[8] == '1'
    c.jitter, c.code, c.message, c.undelivered = e[9], e[10], e[11], e[12] == '1'
    c.history_cap, c.ttl_discarded, c.ttl_dead = ARGV[6], ARGV[4], ARGV[5]
    refused = nack_active(c)
  end
  if refused then
    replies[#replies + 1] = refused
  elseif full then
    replies[#replies + 1] = {STATUS.ok, read_job(job_key, errors_key, c.has_errors)}
  else
    replies[#replies + 1] = {STATUS.ok, c.state}
  end
end
return replies
