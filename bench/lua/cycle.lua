-- Sends pre-rendered HTTP requests, each connection's thread cycling through its share.
--
-- wrk ... -s cycle.lua URL -- <requests file> [<delay ms per connection>]
--
-- The requests file holds complete HTTP/1.1 requests, each preceded by a line with its
-- length in bytes. With several wrk threads, thread k of n sends requests k, k+n, k+2n, ...
-- so no request is sent twice while the file lasts (signed requests and login tokens are
-- single use). A file of one request (one that may repeat) is sent by every thread. When a thread runs out it starts over: those requests are replays, and the
-- server's refusals show up as status errors. A delay argument turns the closed loop into
-- a paced one: each connection waits that long (on average; the fraction is dithered)
-- after each answer before sending its next request.
--
-- done() prints one JSON line (prefixed BENCH_RESULT) that bench/wrk.py parses.

local thread_count = 0
local threads = {}

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local requests = {}
local next_index = 1

local function load_requests(path, index, count)
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  local all = {}
  local position = 1
  while position <= #data do
    local line_end = string.find(data, "\n", position, true)
    local length = tonumber(string.sub(data, position, line_end - 1))
    table.insert(all, string.sub(data, line_end + 1, line_end + length))
    position = line_end + length + 1
  end
  if #all == 1 then
    requests = all
    return
  end
  for ordinal = index + 1, #all, count do
    table.insert(requests, all[ordinal])
  end
  assert(#requests > 0, "no requests for thread " .. index .. " in " .. path)
end

function init(args)
  -- thread_index and thread_count arrive through thread:set (globals of this thread).
  load_requests(args[1], thread_index, tonumber(args[3] or "1"))
  local pause = tonumber(args[2] or "0")
  if pause > 0 then
    local whole = math.floor(pause)
    local fraction = pause - whole
    math.randomseed(os.time() + thread_index)
    delay = function()
      if math.random() < fraction then
        return whole + 1
      end
      return whole
    end
  end
end

function request()
  local raw = requests[next_index]
  next_index = next_index + 1
  if next_index > #requests then
    next_index = 1
  end
  return raw
end

function done(summary, latency, requests_stats)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d,"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
