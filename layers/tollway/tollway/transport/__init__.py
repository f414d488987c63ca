"""The container's one HTTP transport: backends, JWKS and AWS calls share its pool.

client.py    the httpx client (JWKS, tests' transports) and the exchanger built on it
exchange.py  one request and its raw response: the Exchanger protocol and its errors
"""
