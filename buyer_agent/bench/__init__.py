"""buyer_agent.bench: the figures behind BENCHMARKS.md (overhead, journal, replay, resume, concurrency)."""

from buyer_agent.bench._report import BenchReport
from buyer_agent.bench._run import run_benchmarks
from buyer_agent.bench._sizes import FULL, QUICK, TINY, BenchSizes

__all__ = ["FULL", "QUICK", "TINY", "BenchReport", "BenchSizes", "run_benchmarks"]
