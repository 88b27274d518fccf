-- admin_forget_worker: remove one worker from the registry.
-- KEYS[1] worker registry zset  KEYS[2] the worker's hash
-- ARGV[1] worker id  ARGV[2] heartbeat cutoff (ms): a worker heard from at or after it is kept; '' removes anyway
-- Returns 1 when removed, 0 when unknown, -1 when it is not stale.
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not seen then
  return 0
end
if ARGV[2] ~= '' and tonumber(seen) >= tonumber(ARGV[2]) then
  return -1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
