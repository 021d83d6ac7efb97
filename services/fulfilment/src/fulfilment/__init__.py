"""The fulfilment service: allocation, picking waves, pick/pack/ship and tracking."""
