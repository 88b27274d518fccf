-- The admin search's job type filter: '' matches every type; with `prefix` true, the types that start
-- with `wanted`; else `wanted` exactly.
local function type_matches(value, wanted, prefix)
  if wanted == '' then
    return true
  end
  if prefix then
    return string.sub(value, 1, #wanted) == wanted
  end
  return value == wanted
end
