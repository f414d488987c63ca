"""The router's side of usage: each finished request's usage event (events.py), buffered and
sent to the usage queue in numbered messages after the response (emitter.py).

The usage function's side, which validates the messages and records them once, and the tools
that read the records (reports, export, the true-up, Stripe) are tollway/usage: the router
imports none of it.
"""
