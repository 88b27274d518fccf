-- Wake waiting workers (long polls, job streams): one message per queue and script
-- call, naming the queue's available set, on the ctx.notify channel. A call whose
-- context names an origin (the process that woke its own waiters already) appends
-- it after a NUL byte, so that process can skip its own message.
local notified = {}
local function reset_notified()
  notified = {}
end
local function notify(ctx, available_key)
  if ctx and ctx.notify and not notified[available_key] then
    notified[available_key] = true
    local message = available_key
    if ctx.origin then
      message = available_key .. '\0' .. ctx.origin
    end
    redis.call('PUBLISH', ctx.notify, message)
  end
end
