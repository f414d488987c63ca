"""The container's one HTTP stack (exchange.py): backends, DynamoDB and JWKS share its pool."""
