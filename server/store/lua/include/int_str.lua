-- Exact integer rendering: Redis converts Lua numbers with %.14g, which
-- would round scores and timestamps above 1e14.
local function int_str(n)
  return string.format('%.0f', n)
end
