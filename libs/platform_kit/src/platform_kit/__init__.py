"""The data-platform team's shared building blocks for code locations.

- :mod:`platform_kit.source_api`: ``SourceApiResource``, a bounded, retrying,
  validating client for a JSONPlaceholder-compatible API.
- :mod:`platform_kit.frames`: source records to typed DataFrames.
- :mod:`platform_kit.exports`: ``CsvExportResource`` and atomic CSV and JSON writes.
- :mod:`platform_kit.metadata`: row count, schema and preview metadata.
- :mod:`platform_kit.checks`: data-quality rules for ``@dg.asset_check``.
- :mod:`platform_kit.executors`: ``run_executor``, in-process unless a run's config asks for
  ``multiprocess``.
- :mod:`platform_kit.schedules`: ``daily_schedule``, a schedule on SCHEDULE_CRON /
  SCHEDULE_TIMEZONE, checked at load, with one run key per tick.
"""
