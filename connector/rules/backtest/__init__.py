"""Back-testing promotion rules on incident history: replay, summary, reports and charts."""
