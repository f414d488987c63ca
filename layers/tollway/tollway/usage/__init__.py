"""The usage function's side of usage and the billing tools: the message schema it validates
(events.py), the batch it records once (consumer.py, billing.py, table.py), the true-up from
the quota counters (trueup.py), reports, export, reconcile, replay and the Stripe push.

The router never imports this part (tests/integration/test_cold_imports.py): it writes events
as plain dicts and sends them (tollway.recording)."""
