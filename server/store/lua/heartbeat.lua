-- heartbeat: a worker reports in and extends the leases of the jobs it holds.
-- include: active_score, int_str, emit
-- KEYS[1] active zset  KEYS[2] event stream  KEYS[3] worker registry zset
-- KEYS[4] this worker's hash (or a placeholder when no worker id is given)
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] worker id or ''
-- ARGV[4] lease length override (ms) or ''  ARGV[5] default lease length (ms)
-- ARGV[6] job key prefix  ARGV[7] reported worker state or ''  ARGV[8] lease token or ''
-- ARGV[9..] job ids
-- Pre:  none.
-- Post: every listed active job held by this worker (and token, when given)
--       gets lease = now + (override, else its visibility timeout, else the
--       default); job.heartbeat emitted per job; the worker's last heartbeat,
--       reported state and job count are recorded.
-- Returns {directive, extended ids, cancelled ids, not-held ids, last new deadline or ''}.
-- The directive is the strongest of the worker's operator directive and the
-- `directive` of its jobs: terminate > quiet > running.
local now = tonumber(ARGV[1])
local worker = ARGV[3]
local rank = {running = 0, quiet = 1, terminate = 2}
local directive = 'running'
local extended, cancelled, not_held = {}, {}, {}
local last_deadline = ''

local function stronger(candidate)
  if candidate and rank[candidate] and rank[candidate] > rank[directive] then
    directive = candidate
  end
end

for i = 9, #ARGV do
  local id = ARGV[i]
  local job_key = ARGV[6] .. id
  local f = redis.call('HMGET', job_key, 'state', 'worker_id', 'lease_token', 'visibility_timeout_ms',
    'exec_deadline', 'directive', 'queue', 'type', 'attempt')
  if f[1] == 'cancelled' then
    cancelled[#cancelled + 1] = id
  elseif f[1] == 'active' and (worker == '' or not f[2] or f[2] == '' or f[2] == worker)
      and (ARGV[8] == '' or ARGV[8] == f[3]) then
    local lease = tonumber(ARGV[4]) or tonumber(f[4]) or tonumber(ARGV[5])
    local deadline = int_str(now + lease)
    redis.call('HSET', job_key, 'lease_expires_at', deadline)
    redis.call('ZADD', KEYS[1], active_score(deadline, f[5]), id)
    extended[#extended + 1] = id
    last_deadline = deadline
    stronger(f[6])
    emit(KEYS[2], ARGV[2], 'job.heartbeat', id, f[7], f[8], 'active', ARGV[1],
      {worker_id = worker, attempt = tonumber(f[9]) or 0, visible_until = tonumber(deadline)})
  else
    not_held[#not_held + 1] = id
  end
end

if worker ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[1], worker)
  redis.call('HSET', KEYS[4], 'last_heartbeat_at', ARGV[1], 'active_jobs', #ARGV - 8)
  if ARGV[7] ~= '' then
    redis.call('HSET', KEYS[4], 'state', ARGV[7])
  end
  stronger(redis.call('HGET', KEYS[4], 'directive'))
end
return {directive, extended, cancelled, not_held, last_deadline}
