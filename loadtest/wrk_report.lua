-- wrk script for loadtest/compare.sh: at the end of a run, writes the run as JSON
-- to the file named by $WRK_JSON, in the fields of a loadtest --json report
-- that compare.sh reads (latency in ms; errors.total counts connect, read,
-- write and timeout errors and non-2xx/3xx answers).
done = function(summary, latency, requests)
  local e = summary.errors
  local s = summary.duration / 1e6
  local f = io.open(os.getenv("WRK_JSON"), "w")
  f:write(string.format('{"client": "wrk", "requests": %d, "duration_s": %.6f, "warmup_s": 0, "rps": %.3f, ' ..
    '"latency_ms": {"p50": %.6f, "p90": %.6f, "p99": %.6f, "p999": %.6f, "max": %.6f, "mean": %.6f}, ' ..
    '"errors": {"total": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, s, summary.requests / s,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency:percentile(99.9) / 1e3, latency.max / 1e3, latency.mean / 1e3,
    e.connect + e.read + e.write + e.status + e.timeout, e.connect, e.read, e.write, e.status, e.timeout))
  f:close()
end
