"""One module per study: ``TITLE``, ``ORDER`` and ``render(ctx: ReportContext) -> str | None``."""
