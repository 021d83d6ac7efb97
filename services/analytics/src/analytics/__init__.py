"""shopfloor analytics: business figures and alerts from every public topic, on faust."""
