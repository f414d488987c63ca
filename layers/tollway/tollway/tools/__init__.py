"""Blocking boto3 helpers for tools (the CLI, `tollway dev`, tests, benchmarks): never on the
request path, which talks to AWS through the lean async callers (tollway.aws).

    keystore.py   KeyStore: the keys table read and written through a boto3 client
    boto.py       BotoCaller: the DynamoDB caller's calls made through a boto3 client
"""
