-- The bucket of `value` among ascending upper `bounds`: '1'..#bounds, or #bounds + 1 (+Inf), as text
-- (the histograms' field names end with it; a literal costs less than formatting the number).
local BUCKET_TEXT = {'1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15', '16', '17',
  '18', '19', '20'}

local function metric_bucket(bounds, value)
  for i = 1, #bounds do
    if value <= bounds[i] then
      return BUCKET_TEXT[i]
    end
  end
  return BUCKET_TEXT[#bounds + 1]
end
