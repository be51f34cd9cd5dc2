"""The sections of the classifier benchmark, one module each: `latency` (contenders side by side
in this process), `throughput` (whole text set, one fresh process per run) and `cold_start`."""
