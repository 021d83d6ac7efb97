"""The risk service's velocity worker: a faust-streaming stream processor that counts,
for every OrderPlaced on orders.v1, the distinct orders of its customer, its address
fingerprint and its device within the rules' windows, and tells each count as a
VelocityObserved on risk.velocity.v1 (keyed by order id, one message per order and
dimension, again whenever a late order changes a count).

Run it as its own process: `python -m risk.windows` (settings: risk.windows.settings;
RISK_RULES_FILE names the rules). faust's web server stays off. Layout as faust's own:
app, topics, tables, agents; the counting itself is pure (risk.velocity), and
translation is the one place that knows the contracts. `harness` is a development tool
(the tests' and bench/risk_windows.py's, the measurements behind
docs/risk-velocity-faust.md), never imported by the worker.
"""
