"""The compiled route table: the types the request path reads of the config.

    routes.py     CompiledConfig (one stage's table), CompiledRoute, CompiledBackend, and
                  their options (Retry, Breaker, Cache, Defaults)
    plans.py      Plan, Rate, Quota, Price, StripeMeter
    auth.py       JwtIssuer, ApiKeys
    targets.py    ServiceTarget: a service's URLs or discovery reference
    templates.py  `{param}` / `{backend.field}` templates, parsed once
    grpc.py       GrpcMethod: a gRPC backend's method and its descriptors

One type whatever the table was loaded from: `tollway.config` compiles the YAML into these,
and the table `sam build` writes (config/artifact.py) pickles exactly these. The table
imports only the floor (tollway.core, errors) and the compiled policies (tollway.policy).
"""
