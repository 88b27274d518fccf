-- The script context (JSON, see server/store/context.py), decoded once per distinct text. A Redis 7
-- function library keeps this cache between calls (see server/store/scripts.py), so most calls skip
-- the decoding; an EVAL script starts afresh and decodes it on every call, as before. It is shared
-- on purpose, unlike per-call state: the fields scripts add to it (the active and expiring keys,
-- the parsed retry policy) are the same for every call that passes the same text.
local context_text, context_table = nil, nil

local function script_context(text)
  if text ~= context_text then
    context_text, context_table = text, cjson.decode(text)
  end
  return context_table
end
