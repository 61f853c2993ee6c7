"""Custom metrics for Cloud Monitoring: the metric list, and the exporter core that turns minute
aggregates into time series and writes each minute once, in order."""
