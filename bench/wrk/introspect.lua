-- wrk script: POST /oauth2/introspect for tokens read from the file in TOKENS_FILE, the super
-- admin's Basic credentials (admin:admin, the shipped default), one token per request, cycling.
local tokens = {}
local file = os.getenv("TOKENS_FILE")
if file then
  for line in io.lines(file) do
    if #line > 0 then tokens[#tokens + 1] = "token=" .. line end
  end
end
if #tokens == 0 then tokens[1] = "token=unknown" end

local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", "/oauth2/introspect", {
    ["Authorization"] = "Basic YWRtaW46YWRtaW4=",
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, tokens[i])
end

done = function(summary, latency, requests)
  io.write(string.format("WRK_RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
