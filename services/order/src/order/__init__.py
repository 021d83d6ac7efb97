"""The order service owns orders: placement (with idempotency and duplicate detection),
payment, confirmation once every required check passed, payment deadlines, cancellation,
refunds and shipping. It publishes `orders.v1` and consumes `inventory.v1`."""
