-- wrk script: POST one /v1/rewards body read from the file named by the
-- REWARDD_BENCH_BODY environment variable.
local f = assert(io.open(os.getenv("REWARDD_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
