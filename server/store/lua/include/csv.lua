-- The items of a comma-separated list ('' or nil: none).
local function csv(text)
  local out = {}
  if text and text ~= '' then
    for item in string.gmatch(text, '[^,]+') do
      out[#out + 1] = item
    end
  end
  return out
end
