-- wrk script for bench/verifier_load.py: POST each pre-made body exactly once, then stop.
--
--   wrk -t T -c C -d MAX --timeout 60s -s bench/verifier_wrk.lua URL -- BODIES T PATH MARKER
--
-- BODIES has one application/x-www-form-urlencoded body per line; thread k sends lines
-- k, k+T, k+2T, ... When a thread has all its answers it writes MARKER.k and stops (its first
-- non-200 answers go to MARKER-errors.k); the caller then interrupts wrk (SIGINT), whose
-- done() prints one JSON line prefixed "RESULT ". MARKER-progress.k is rewritten every 128
-- answers, so the caller can tell a stalled run.
-- A closed loop: each connection sends its next body when the last one was answered.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } verifier_timespec;
  int clock_gettime(int clock_id, verifier_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("verifier_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path, count, target, marker = args[1], tonumber(args[2]), args[3], args[4]
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  requests, statuses = {}, {}
  sent, received, started, finished = 0, 0, 0, 0
  marker_path, errors_path = marker .. "." .. id, marker .. "-errors." .. id
  progress_path = marker .. "-progress." .. id
  -- wrk calls request() once on thread 0 right after init() to check the request's syntax;
  -- that call must not use up a body.
  probe = id == 0
  kept_errors = 0
  local index = 0
  for line in io.lines(path) do
    if index % count == id and #line > 0 then
      requests[#requests + 1] = wrk.format("POST", target, headers, line)
    end
    index = index + 1
  end
end

function delay()
  -- Nothing left to send: park the connection until the run is interrupted.
  if sent >= #requests then
    return 3600000
  end
  return 0
end

function request()
  if probe then
    probe = false
    return requests[1] or wrk.format("GET", "/")
  end
  if sent == 0 then
    started = now()
  end
  sent = sent + 1
  return requests[sent]
end

function response(status, headers, body)
  received = received + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status ~= 200 and kept_errors < 3 then
    kept_errors = kept_errors + 1
    local file = io.open(errors_path, "a")
    file:write(key .. " " .. string.sub(body or "", 1, 200) .. "\n")
    file:close()
  end
  if received % 128 == 0 then
    local file = io.open(progress_path, "w")
    file:write(received .. "\n")
    file:close()
  end
  if received == #requests then
    finished = now()
    local file = io.open(marker_path, "w")
    file:write("done\n")
    file:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local parts, first, last = {}, nil, 0
  local totals = {}
  for _, thread in ipairs(threads) do
    local began, ended = thread:get("started"), thread:get("finished")
    if began and began > 0 and (first == nil or began < first) then
      first = began
    end
    if ended and ended > last then
      last = ended
    end
    for code, n in pairs(thread:get("statuses") or {}) do
      totals[code] = (totals[code] or 0) + n
    end
  end
  for code, n in pairs(totals) do
    parts[#parts + 1] = string.format('"%s": %d', code, n)
  end
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"statuses": {%s}, "started": %.6f, "finished": %.6f, "p50_us": %d, ' ..
    '"p95_us": %d, "p99_us": %d, "max_us": %d, "socket_errors": %d, "timeouts": %d}\n',
    table.concat(parts, ", "), first or 0, last, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max,
    errors.connect + errors.read + errors.write, errors.timeout))
end
