"""What people and other tools see of a run: Prometheus series, Grafana dashboards, the
dashboard's timelines, terminal output and the web assets of the pages."""
