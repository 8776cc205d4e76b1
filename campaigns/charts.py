"""The staff pages' charts: the shared server-side SVG helpers (churn_infra.svg)."""

from churn_infra.svg import grouped_bars, horizontal_bars, percent, progress_bar, risk_trend, stacked_columns

__all__ = ["grouped_bars", "horizontal_bars", "percent", "progress_bar", "risk_trend", "stacked_columns"]
