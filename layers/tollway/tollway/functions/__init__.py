"""One Lambda adapter per function, named after it: what a function does only because it
runs on Lambda (its event in, its answer out, its init), over the code it shares with the
dev server and the tools.

    router.py     RouterFunction: HTTP API events -> the gateway app, the internal extension
                  that flushes after each response (extension.py), the event reader
                  (http_api.py), SnapStart's after-restore hook
    usage.py      UsageFunction: SQS batches of usage messages -> tollway.usage.consumer

Each `functions/<name>/app.py` of the SAM template is a few lines that call these.
"""
