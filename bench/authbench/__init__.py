"""The benchmark suite of issue 6: `scripts/bench` runs `python -m authbench` with
bench/ on the path. One module per job: config (sizes, durations, paths), machine
(facts), postgres (bench databases, bulk rows), servers (processes), procfs (what /proc
says about them), accounts (users and tokens), httpload (a lean HTTP/1.1 load client),
refreshing, flooding and probe (the loads built on it), wrk, ceiling (the raw asyncpg
script), scenarios/* (one per scenario), profiling (py-spy), report (RESULTS.md)."""
