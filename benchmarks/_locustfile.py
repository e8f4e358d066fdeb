"""Locust peer for bench_rate.py: FastHttpUser, one `GET /` per task, no wait (closed loop).

The host comes from `--host` (always a 127.0.0.1 URL given by the benchmark script).
"""

from locust import FastHttpUser, constant, task


class Root(FastHttpUser):
    wait_time = constant(0)

    @task
    def root(self) -> None:
        self.client.get("/")
