-- wrk script of bench/serve_load.sh: POSTs the image in $IMG to the path in $PATH_Q, counts
-- the answers by status and prints one RESULT line (latencies in ms).
local f = assert(io.open(os.getenv("IMG"), "rb"))
local body = f:read("*all")
f:close()
wrk.method = "POST"
wrk.path = os.getenv("PATH_Q") or "/v1/banks/part/predict"
wrk.body = body
wrk.headers["Content-Type"] = "image/png"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    for k, v in pairs(c) do agg[k] = (agg[k] or 0) + v end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.3f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.connect, e.read, e.write, e.timeout))
  for k, v in pairs(agg) do io.write(string.format(" code_%d=%d", k, v)) end
  io.write("\n")
end
