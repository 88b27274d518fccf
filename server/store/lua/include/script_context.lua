-- The script context (JSON, see server/store/context.py), decoded once per distinct text. A Redis 7
-- function library keeps this cache between calls (see server/store/scripts.py), so most calls skip
-- the decoding; an EVAL script starts afresh and decodes it on every call, as before. It is shared
-- on purpose, unlike per-call state: the fields scripts add to it (the active and expiring keys,
-- the parsed retry policy) are the same for every call that passes the same text.
-- Several texts are live at once (each server process's own, with and without its notification
-- origin), so the cache holds many; it starts over past CONTEXT_CACHE_SIZE (processes come and go).
local CONTEXT_CACHE_SIZE = 64
local contexts, context_count = {}, 0

local function script_context(text)
  local context = contexts[text]
  if context == nil then
    if context_count >= CONTEXT_CACHE_SIZE then
      contexts, context_count = {}, 0
    end
    context = cjson.decode(text)
    contexts[text] = context
    context_count = context_count + 1
  end
  return context
end
