-- set_directive: an operator tells a worker to keep running, go quiet or terminate.
-- KEYS[1] worker registry zset  KEYS[2] the worker's hash
-- ARGV[1] now (ms)  ARGV[2] worker id  ARGV[3] directive (running | quiet | terminate)
-- Post: the directive is stored (running clears it) and sent on the worker's next
--       heartbeat. A worker not seen yet enters the registry now, so a directive for
--       a worker that never reports in is pruned with the registry like any other.
-- Returns the worker's hash.
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
if ARGV[3] == 'running' then
  redis.call('HDEL', KEYS[2], 'directive')
else
  redis.call('HSET', KEYS[2], 'directive', ARGV[3])
end
return redis.call('HGETALL', KEYS[2])
