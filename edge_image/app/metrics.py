"""A small Prometheus text-format registry: request counts, latency and inference-time histograms."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Cumulative-bucket histogram of seconds, one series per label value."""

    def __init__(self, name: str, help_text: str, label: str):
        self.name, self.help, self.label = name, help_text, label
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.sums: dict[str, float] = defaultdict(float)
        self.totals: dict[str, int] = defaultdict(int)

    def observe(self, value: str, seconds: float) -> None:
        buckets = self.counts[value]
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
        self.sums[value] += seconds
        self.totals[value] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for value in sorted(self.totals):
            for bound, count in zip(BUCKETS, self.counts[value], strict=True):
                lines.append(f'{self.name}_bucket{{{self.label}="{value}",le="{bound}"}} {count}')
            lines.append(f'{self.name}_bucket{{{self.label}="{value}",le="+Inf"}} {self.totals[value]}')
            lines.append(f'{self.name}_sum{{{self.label}="{value}"}} {self.sums[value]:.6f}')
            lines.append(f'{self.name}_count{{{self.label}="{value}"}} {self.totals[value]}')
        return lines


class Metrics:
    """Everything GET /metrics reports; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency = Histogram("retrain_request_duration_seconds", "Time to answer a request.", "route")
        self.inference = Histogram("retrain_inference_duration_seconds", "Time inside the interpreter.", "task")

    def record_request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self.latency.observe(route, seconds)

    def record_inference(self, task: str, seconds: float) -> None:
        with self._lock:
            self.inference.observe(task, seconds)

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP retrain_requests_total Requests answered, by route and status code.",
                     "# TYPE retrain_requests_total counter"]
            for (route, status), count in sorted(self.requests.items()):
                lines.append(f'retrain_requests_total{{route="{route}",code="{status}"}} {count}')
            lines += self.latency.render() + self.inference.render()
        return "\n".join(lines) + "\n"
