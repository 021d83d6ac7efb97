"""The service desk: one ticket queue for every channel, tickets opened from other
services' events, routing by type and tier, SLA timers with three-level escalation,
templates, satisfaction and KPIs, and after-sales returns that restock and refund."""
