-- A POST for wrk: the body and its content type come from the environment
-- (BENCH_BODY, BENCH_CONTENT_TYPE), so that no password is written into a script.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/x-www-form-urlencoded"
