"""Number formatting for the evaluation pages and exports: a missing value is "—", never "None"."""

from django import template

register = template.Library()


@register.filter
def num(value, digits: int = 4):
    """A float to ``digits`` significant figures; ints as they are; anything else as "—"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{int(digits)}g}"
    return "—" if value in (None, "") else value


@register.filter
def signed(value):
    return f"{value:+.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


@register.filter
def pct(value):
    return f"{value * 100:.1f} %" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


@register.filter
def get(mapping, key):
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def delta_class(metric):
    """delta-good / delta-bad by the sign of the delta and whether higher is better."""
    delta = metric.get("delta") if isinstance(metric, dict) else None
    if not isinstance(delta, int | float) or delta == 0:
        return ""
    return "delta-good" if (delta > 0) == bool(metric.get("higher_is_better", True)) else "delta-bad"
