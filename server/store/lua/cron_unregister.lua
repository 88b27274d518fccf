-- cron_unregister: remove a cron entry; jobs it already enqueued are untouched.
-- KEYS[1] entry hash  KEYS[2] entry names zset  KEYS[3] due zset
-- ARGV[1] name
-- Returns 1 if the entry existed, else 0.
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('DEL', KEYS[1])
