"""`make bench`: throughput, baseline ratio, worker rate and latency, printed as figures."""
