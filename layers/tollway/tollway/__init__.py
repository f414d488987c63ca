"""Tollway: a serverless API gateway. The package is built in floors; a part imports only the
floors below it, and no two parts import each other (tests/unit/test_layers.py, `make imports`
draws them):

    core, errors      the request's vocabulary: request, response, problem, the per-request
                      Context, the step shapes; imports nothing else of Tollway's
    policy, table     the compiled route table's types and its compiled edge policies (CORS,
                      IP rules, validation, metering terms): what the request path reads of
                      the config, one type whatever the table was loaded from
    config            YAML -> validated models -> the compiled table (build time; never at a
                      warm request); imports only the floors above and itself
    routing           path and method -> route, decoded once
    transport, aws    the one HTTP exchanger (aiohttp); the lean, signed AWS callers on it
    auth, quota,      the steps' work: credentials, admission and settles, backend calls and
    upstream,         composition, discovery; `recording` is the router's side of usage (the
    discovery,        event, the emitter)
    recording
    pipeline          the steps, assembled once per route; `gateway`: match -> chain ->
    gateway, http     problem -> finish; `http`: the one ASGI app of both hosts
    assemble          one container's parts, built once and injected
    functions         one Lambda adapter per function (router, usage)
    usage             the usage function's work and the billing tools (reports, export,
                      true-up, Stripe); never imported by the router
    tools, dev,       blocking boto3 helpers, `tollway dev`, the CLI: never on the request
    commands, cli     path
"""
