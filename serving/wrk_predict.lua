-- wrk script: POST the JSON request body read from the file named by $BODY.
--   BODY=request.json wrk -t2 -c8 -d20s --latency -s serving/wrk_predict.lua \
--       http://127.0.0.1:8501/v1/models/sitn:predict
local path = os.getenv("BODY")
assert(path, "set BODY to a file holding the JSON request body")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
wrk.headers["Content-Type"] = "application/json"
file:close()
