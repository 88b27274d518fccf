-- cron_register: create or update a cron entry.
-- KEYS[1] entry hash  KEYS[2] entry names zset  KEYS[3] due zset
-- ARGV[1] now (ms)  ARGV[2] name  ARGV[3] next run (ms), '' when disabled
-- ARGV[4..] field, value pairs (definition fields)
-- Post: definition written; created_at kept on update; run history kept;
--       due set holds the entry iff it is enabled, at its next run.
-- Returns {1 if created else 0, entry hash}.
local created = redis.call('EXISTS', KEYS[1]) == 0
local fields = {}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1])
if created then
  redis.call('HSET', KEYS[1], 'created_at', ARGV[1], 'run_count', 0)
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'next_run_at')
  redis.call('ZREM', KEYS[3], ARGV[2])
else
  redis.call('HSET', KEYS[1], 'next_run_at', ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
end
return {created and 1 or 0, redis.call('HGETALL', KEYS[1])}
