"""The inventory service owns stock: on hand, reserved and available per SKU and warehouse,
receipts, counts, transfers, serial numbers, stock policies (safety stock, lead time,
purchase limits, presale), and the reservations that lock stock for orders. It consumes
`orders.v1` and publishes `inventory.v1`."""
