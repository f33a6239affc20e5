"""`make bench`: chip against a minimal Tornado baseline, on loopback; see BENCHMARKS.md."""
