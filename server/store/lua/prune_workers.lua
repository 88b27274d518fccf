-- prune_workers: forget workers not heard from since a cutoff.
-- KEYS[1] worker registry zset
-- ARGV[1] cutoff (ms)  ARGV[2] worker hash key prefix  ARGV[3] max removed per call
-- Returns the number removed.
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, worker in ipairs(gone) do
  redis.call('ZREM', KEYS[1], worker)
  redis.call('DEL', ARGV[2] .. worker)
end
return #gone
