"""Notifications: routes and receivers (config.py, receivers.py), grouping with dependencies,
maintenance and acknowledgements (grouper.py), durable delivery through an outbox (outbox.py,
store/outbox.py). The shared vocabulary is model.py."""
