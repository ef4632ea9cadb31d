"""The domain: the change model, configuration, errors and every pure decision (processing plans,
recipients, rules, kinds, announcements, meetings, audience plans, alert rules). No I/O and no
vendor client here; everything else builds on it (tests/unit/test_layers.py)."""
