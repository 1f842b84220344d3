"""`mirror-engine bench`: end-to-end throughput, CPU, memory and latency of mirror-engine against
Java MirrorMaker 2 and against what the brokers themselves can do (the ceiling), on the same clusters
in one run; `--sweep` turns the measurements into a sizing answer.

Modules by role: `procstat` (CPU and memory of a process tree from /proc), `payload` (the records),
`ceiling` (Kafka's own perf tools), `floor` and `_floor` (librdkafka alone: the floor row), `mm2`
(mm2.properties, Java MirrorMaker 2 at its defaults and tuned), `engine_runner`
(mirror-engine), `harness` (clusters, runs, latency), `report` (statistics, JSON, Markdown, plots),
`sweep` (capacity planning), `compare` (`--compare`: a run's figures as ratios to an earlier run's).
"""
