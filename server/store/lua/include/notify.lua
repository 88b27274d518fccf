-- Wake waiting workers (long polls, job streams): one message per queue and script
-- call, naming the queue's available set, on the ctx.notify channel.
local notified = {}
local function reset_notified()
  notified = {}
end
local function notify(ctx, available_key)
  if ctx and ctx.notify and not notified[available_key] then
    notified[available_key] = true
    redis.call('PUBLISH', ctx.notify, available_key)
  end
end
