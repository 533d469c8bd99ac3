"""The trading showcase: order, pricing and risk services (see config/showcase.toml).

- `pricing-service` keeps a price book that moves on a timer and publishes
  `events.pricing.updated`.
- `risk-service` tracks positions from `events.order.created` (every instance
  sees every event) and approves or rejects orders against its limits.
- `order-service` places orders: it asks pricing for a quote and risk for an
  approval, stores the order in JetStream KV (state lives only there, so any
  instance can answer `get_order`), and publishes `events.order.created`.
"""
