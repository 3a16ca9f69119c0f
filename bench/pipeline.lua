-- wrk script for the overhead benchmark: writes PIPELINING requests at once on each connection
-- (HTTP/1.1 pipelining; 1 is plain keep-alive). wrk counts each response it parses.
local depth = tonumber(os.getenv("PIPELINING") or "1")
local batch

init = function (args)
  local requests = {}
  for i = 1, depth do requests[i] = wrk.format("GET", "/") end
  batch = table.concat(requests)
end

request = function ()
  return batch
end
