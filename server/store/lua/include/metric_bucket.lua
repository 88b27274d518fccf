-- The bucket of `value` among ascending upper `bounds`: 1..#bounds, or #bounds + 1 (+Inf).
local function metric_bucket(bounds, value)
  for i = 1, #bounds do
    if value <= bounds[i] then
      return i
    end
  end
  return #bounds + 1
end
