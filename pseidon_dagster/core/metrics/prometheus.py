"""The page in Prometheus' text format (prometheus-client)."""
from __future__ import annotations


def prometheus_text(page: dict) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self):
            logs = page["logs"]

            def per_log(name, doc, value_of, kind=GaugeMetricFamily):
                fam = kind(name, doc, labels=["log"])
                for lg, e in sorted(logs.items()):
                    v = value_of(e)
                    if v is not None:
                        fam.add_metric([lg], float(v))
                return fam

            lag = GaugeMetricFamily("pseidon_log_lag_messages", "Messages in Kafka not yet committed, measured live",
                                    labels=["log", "partition"])
            for lg, e in sorted(logs.items()):
                for p, v in e["lag"].items():
                    lag.add_metric([lg, p], float(v))
            yield lag
            yield per_log("pseidon_log_enabled", "1 if the pseidon_logs row is enabled", lambda e: int(e["enabled"]))
            yield per_log("pseidon_last_commit_timestamp_seconds", "Time of the last successful commit",
                          lambda e: e["last-commit-ms"] / 1000 if e["last-commit-ms"] else None)
            yield per_log("pseidon_last_data_timestamp_seconds", "Time of the last commit that landed data files",
                          lambda e: e["last-data-ms"] / 1000 if e["last-data-ms"] else None)
            for field, doc in (("messages", "Messages read"), ("written", "Messages written"),
                               ("quarantined", "Messages quarantined"), ("bytes", "Bytes of files published"),
                               ("files", "Files published"), ("seconds", "Duration in seconds")):
                yield per_log(f"pseidon_last_run_{field}", f"{doc} by the log's last committed run",
                              lambda e, f=field: (e["last-run"] or {}).get(f))
            for field, doc in (("messages", "Messages read by committed runs"), ("written", "Messages written"),
                               ("filtered", "Null messages filtered"), ("quarantined", "Messages quarantined"),
                               ("bytes", "Bytes of files published"), ("files", "Files published"),
                               ("runs", "Committed runs")):
                yield per_log(f"pseidon_{field}_total", doc, lambda e, f=field: e["totals"][f], CounterMetricFamily)
            yield _failures(page)
            yield per_log("pseidon_failed_runs_since_success", "Failed runs since the last successful commit",
                          lambda e: e["failed-runs"])
            yield per_log("pseidon_freshness_limit_seconds", "How long the log may go without landing data",
                          lambda e: e["freshness"]["limit-minutes"] * 60)
            yield per_log("pseidon_log_stale", "1 if the log has not landed data within its freshness limit",
                          lambda e: {"stale": 1, "fresh": 0}.get(e["freshness"]["state"]))
            yield per_log("pseidon_last_hour_files", "Files published in the last hour",
                          lambda e: e["last-hour"]["files"])
            yield per_log("pseidon_last_hour_bytes", "Bytes published in the last hour",
                          lambda e: e["last-hour"]["bytes"])
            mem = GaugeMetricFamily("pseidon_run_max_rss_bytes", "Peak RSS of the log's last committed run",
                                    labels=["log"])
            for lg, v in sorted(page["memory"]["runs"].items()):
                mem.add_metric([lg], v["max-rss-mb"] * 2**20)
            yield mem
            meter = page["etl-service-thread-metrics"]
            yield CounterMetricFamily("pseidon_etl_messages_total", "Messages read by committed runs, all logs",
                                      value=meter["count"])
            rate = GaugeMetricFamily("pseidon_messages_rate", "Messages per second read by committed runs",
                                     labels=["window"])
            for w, k in (("1m", "one-minute-rate"), ("5m", "five-minute-rate"), ("mean", "mean-rate")):
                rate.add_metric([w], meter[k])
            yield rate
            yield GaugeMetricFamily("pseidon_work_queue_logs", "Logs with lag waiting for a run (etl-kafka-work-queue)",
                                    value=page["etl-kafka-work-queue"])
            yield GaugeMetricFamily("pseidon_runs_queued", "Ingest runs queued in Dagster, not started",
                                    value=page["etl-service-thread-queue"])
            yield GaugeMetricFamily("pseidon_runs_in_progress", "Ingest runs started and not finished",
                                    value=page["runs-in-progress"])
            conns = GaugeMetricFamily("pseidon_open_connections", "Established TCP connections of this machine to "
                                      "the configured servers", labels=["server"])
            for k, v in page["open-connections"].items():
                if v is not None and k != "tcp-conn":
                    conns.add_metric([k], v)
            yield conns
            host = GaugeMetricFamily("pseidon_host_memory_bytes", "Memory of the machine serving this page",
                                     labels=["kind"])
            for k, v in page["memory"]["host"].items():
                if v is not None:
                    host.add_metric([k.replace("-mb", "")], v * 2**20)
            yield host

    def _failures(pg):
        fam = CounterMetricFamily("pseidon_run_failures_total", "Failed runs (run-failure sensor)", labels=["log"])
        for lg in sorted(pg["logs"]):
            fam.add_metric([lg], float((pg["topic-errors"].get(lg) or {}).get("failed-runs-total", 0)))
        return fam

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry)
