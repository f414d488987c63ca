"""The one table of a bench run: each measure, its same-run baseline, the ratio and the target.

A measure whose piece is not wired shows "pending"; one that failed shows "error" (the
reason is in results.json). No number here comes from anywhere but this run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Row:
    num: str
    measure: str
    tollway: str
    baseline: str
    ratio: str
    target: str
    status: str  # met | NOT MET | pending | error | info

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _us(v: float) -> str:
    return f"{v:,.0f} µs"


def _rps(v: float) -> str:
    return f"{v:,.0f} req/s"


def _x(v: float) -> str:
    return f"{v:.2f}x"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _failed(value: Any) -> str | None:
    if value is None:
        return "not run"
    if isinstance(value, dict) and "error" in value:
        return str(value["error"]).splitlines()[0][:120]
    return None


def _cpu_rows(r: dict[str, Any]) -> list[Row]:
    cpu = r.get("cpu")
    why = _failed(cpu)
    if why:
        return [Row("1", "CPU per request, in-process handler", "error", why, "", "≤ 1.00x", "error")]
    us = cpu["cpu_us"]
    floor = us["floor"]
    base = f"naive floor {_us(floor)}"
    out = []
    if "tollway_full" in us:
        # The quota's DynamoDB call bypasses botocore (tollway.aws.dynamodb): measure 6 counts it.
        quota = cpu["components"].get("quota", False)
        usage = cpu["components"]["usage"]
        parts = [
            "API key",
            "quota" if quota else "quota pending",
            "proxy",
            "usage" if usage else "usage pending",
        ]
        pending = not (quota and usage)
        ratio = us["tollway_full"] / floor
        out.append(
            Row(
                "1",
                f"CPU/request, warm in-process handler, full pipeline ({', '.join(parts)})",
                _us(us["tollway_full"]),
                base,
                _x(ratio),
                "≤ 1.00x",
                "pending" if pending else _met(ratio <= 1.0),
            )
        )
    else:
        out.append(
            Row(
                "1",
                "CPU/request, full pipeline (API keys pending)",
                "pending",
                base,
                "",
                "≤ 1.00x",
                "pending",
            )
        )
    if "tollway_full_with_usage_flush" in us:
        v = us["tollway_full_with_usage_flush"]
        out.append(
            Row(
                "1b",
                "… plus the usage flush after the response (1 SendMessageBatch)",
                _us(v),
                base,
                _x(v / floor),
                "—",
                "info",
            )
        )
    v = us["tollway_public"]
    out.append(
        Row(
            "1c",
            "CPU/request, public proxy route (no key, no quota; usage buffered)",
            _us(v),
            base,
            _x(v / floor),
            "—",
            "info",
        )
    )
    return out


def _load_rows(r: dict[str, Any]) -> list[Row]:
    why = _failed(r.get("load") or {}) or _failed(r.get("throughput"))
    if why:
        return [Row("2", "req/s, one uvicorn worker, public proxy route", "error", why, "", "", "error")]
    t = r["throughput"]
    mine = t["tollway"]
    if mine["errors"]:
        return [
            Row(
                "2", "req/s, public proxy route", "error", f"{mine['errors']} failed answers", "", "", "error"
            )
        ]
    out = []
    label = "req/s, wrk -c32, one uvicorn worker, public proxy route"
    if "fast_gateway" in t:
        ratio = mine["rps"] / t["fast_gateway"]["rps"]
        out.append(
            Row(
                "2",
                label,
                _rps(mine["rps"]),
                f"fast-gateway {_rps(t['fast_gateway']['rps'])}",
                _x(ratio),
                "≥ 0.50x",
                _met(ratio >= 0.5),
            )
        )
    else:
        out.append(Row("2", label, _rps(mine["rps"]), "fast-gateway not installed", "", "≥ 0.50x", "error"))
    ratio = mine["rps"] / t["naive"]["rps"]
    out.append(
        Row(
            "2b",
            "… vs the naive passthrough (Starlette + default httpx, uvicorn)",
            _rps(mine["rps"]),
            f"naive {_rps(t['naive']['rps'])}",
            _x(ratio),
            "≥ 5.00x",
            _met(ratio >= 5.0),
        )
    )
    out.append(
        Row(
            "2c",
            "… vs nginx reverse proxy (1 worker, keepalive)",
            _rps(mine["rps"]),
            f"nginx {_rps(t['nginx']['rps'])}",
            _x(mine["rps"] / t["nginx"]["rps"]),
            "—",
            "info",
        )
    )
    one = r["one_connection"]
    me, direct = one["tollway"], one["direct"]
    ratio = me["p50_ms"] / direct["p50_ms"]
    out.append(
        Row(
            "3",
            "p50 / p99 at one connection (wrk -c1)",
            f"{me['p50_ms']:.2f} / {me['p99_ms']:.2f} ms",
            f"direct {direct['p50_ms']:.2f} / {direct['p99_ms']:.2f} ms",
            f"p50 {_x(ratio)}",
            "p50 ≤ 1.30x",
            _met(ratio <= 1.3),
        )
    )
    return out


def _fanout_row(r: dict[str, Any]) -> Row:
    f = r.get("fanout")
    why = _failed(f)
    if why:
        return Row("4", "5 parallel backends of 50 ms vs 1", "error", why, "", "≤ 1.15x", "error")
    ok = (
        f["statuses"]["five"] == [200]
        and f["statuses"]["one"] == [200]
        and len(f["group_members"] or []) == 5
    )
    ratio = f["ms"]["five"] / f["ms"]["one"]
    return Row(
        "4",
        "5 parallel backends of 50 ms vs 1 (group route, in-process)",
        f"{f['ms']['five']:.1f} ms",
        f"1 backend {f['ms']['one']:.1f} ms",
        _x(ratio),
        "≤ 1.15x",
        _met(ratio <= 1.15) if ok else "error",
    )


def _cold_rows(r: dict[str, Any]) -> list[Row]:
    c = r.get("cold_start")
    why = _failed(c)
    if why:
        return [Row("5", "cold start", "error", why, "", "≤ 1.50x", "error")]
    ms = c["ms"]
    ratio = ms["gateway"] / ms["boto3"]
    out = [
        Row(
            "5",
            "cold start: import + init + first invocation (median of 7)",
            f"{ms['gateway']:.0f} ms",
            f"`import boto3` {ms['boto3']:.0f} ms",
            _x(ratio),
            "≤ 1.50x",
            _met(ratio <= 1.5),
        )
    ]
    built = c.get("built")
    if built:
        total = built["function_mb"] + built["layer_mb"]
        out.append(
            Row(
                "5b",
                "built function + layer, unzipped (.aws-sam/build)",
                f"{total:.1f} MB",
                f"function {built['function_mb'] * 1000:.0f} kB + layer {built['layer_mb']:.1f} MB",
                "",
                "—",
                "info",
            )
        )
    else:
        out.append(
            Row("5b", "built function + layer size", "not built", "run `make build`", "", "—", "pending")
        )
    return out


def _calls_rows(r: dict[str, Any]) -> list[Row]:
    c = r.get("calls")
    why = _failed(c)
    if why:
        return [Row("6", "AWS calls per request", "error", why, "", "1 / 0 / 0", "error")]
    if "admitted" not in c:
        return [
            Row("6", "AWS calls per request", "pending", "API keys not wired", "", "1 / 0 / 0", "pending")
        ]

    def n(name: str) -> float:
        return c[name]["blocking_per_request"]

    quota = c["admitted"]["blocking_ops"].get("dynamodb.UpdateItem", 0) > 0
    limited = c["over_quota"]["statuses"].get("429", 0) == sum(c["over_quota"]["statuses"].values())
    got = f"{n('admitted'):g} / {n('over_quota'):g} / {n('unknown_key_repeated'):g}"
    status = _met((n("admitted"), n("over_quota"), n("unknown_key_repeated")) == (1, 0, 0))
    out = [
        Row(
            "6",
            "blocking AWS calls/request: admitted / over quota / unknown key (botocore hooks)",
            got,
            "—",
            "",
            "1 / 0 / 0",
            status if quota and limited else "pending",
        )
    ]
    background = c["admitted"]["background_per_request"]
    forged = n("forged_key_distinct") if "forged_key_distinct" in c else None
    forged_text = "—" if forged is None else f"{forged:g}"
    out.append(
        Row(
            "6b",
            "… a new forged key each time (well-formed, MAC under another secret) / malformed key; "
            "usage sends after the response",
            f"{forged_text} / {n('malformed_key'):g}; {background:g} in background",
            f"a new issued-but-unknown key: {n('unknown_key_distinct'):g} (one read each)",
            "",
            "0 / 0",
            "pending" if forged is None else _met(forged == 0 and n("malformed_key") == 0),
        )
    )
    return out


def _flood_row(r: dict[str, Any]) -> Row:
    f = r.get("flood")
    measure = "public route p99 (wrk -c8) while 200 forged + 200 unknown keys/pass hit a slow DynamoDB"
    why = _failed(f)
    if why:
        return Row("6c", measure, "error", why, "", "≤ 2.00x idle p99", "error")
    idle, busy = f["idle"]["p99_ms"], f["flood"]["p99_ms"]
    ratio = busy / idle if idle else float("inf")
    return Row(
        "6c",
        f"{measure} ({f['delay_ms']} ms late; {f['flood_requests']:,} flood requests)",
        f"{busy:.2f} ms",
        f"idle p99 {idle:.2f} ms",
        _x(ratio),
        "≤ 2.00x idle p99",
        _met(ratio <= 2.0 and f["idle"]["errors"] == 0 and f["flood"]["errors"] == 0),
    )


def _rss_row(r: dict[str, Any]) -> Row:
    m = r.get("rss")
    why = _failed(m)
    if why:
        return Row("7", "RSS before/after 20,000 requests", "error", why, "", "bounded", "error")
    rss = m["rss_mb"]
    marks = sorted(rss, key=int)
    start, half, end = rss[marks[0]], rss[marks[1]], rss[marks[-1]]
    late = end - half
    return Row(
        "7",
        f"RSS, warm container, {int(marks[-1]):,} requests (1 in 20 a new unknown key)",
        f"{start:.1f} → {half:.1f} → {end:.1f} MB",
        f"key caches {r.get('key_cache_size')} entries each",
        f"+{end - start:.1f} MB",
        "flat once caches are full (2nd half ≤ 1 MB)",
        _met(late <= 1.0),
    )


def _race_row(r: dict[str, Any]) -> Row:
    m = r.get("race")
    why = _failed(m)
    limit = r.get("race_limit")
    if why:
        return Row(
            "8",
            "admitted of 500 concurrent requests",
            "error" if m else "pending",
            why,
            "",
            "= limit",
            "error" if m else "pending",
        )
    admitted = m["statuses"].get("200", 0)
    limited = m["statuses"].get("429", 0)
    if limited == 0:
        return Row(
            "8",
            "admitted of 500 concurrent requests",
            f"{admitted}",
            f"limit {limit}",
            "",
            "= limit",
            "pending",
        )
    return Row(
        "8",
        "admitted of 500 concurrent requests (20 containers, moto server)",
        f"{admitted} admitted",
        f"limit {limit}",
        _x(admitted / limit),
        "exactly the limit",
        _met(admitted == limit),
    )


def _step_rows(r: dict[str, Any]) -> list[Row]:
    out = []
    cpu = r.get("cpu")
    if not _failed(cpu) and "tollway_public_default_httpx" in cpu["cpu_us"]:
        us = cpu["cpu_us"]
        ratio = us["tollway_public"] / us["tollway_public_default_httpx"]
        out.append(
            Row(
                "S1",
                "step: the one exchanger, aiohttp (CPU/request, public route)",
                _us(us["tollway_public"]),
                f"default httpx {_us(us['tollway_public_default_httpx'])}",
                _x(ratio),
                "< 1.00x",
                _met(ratio < 1.0),
            )
        )
    blocked = r.get("cpu_without_sniffio")
    error = r.get("sniffio_error")
    if not _failed(cpu) and not _failed(blocked):
        with_, without = cpu["cpu_us"]["floor"], blocked["cpu_us"]["floor"]
        out.append(
            Row(
                "S2",
                "step: sniffio importable (CPU/request, default-httpx floor)",
                f"{_us(with_)} ({'imports' if error is None else 'FAILS: ' + error})",
                f"sniffio missing {_us(without)}",
                _x(with_ / without),
                "imports",
                _met(error is None),
            )
        )
    else:
        out.append(
            Row(
                "S2",
                "step: sniffio importable",
                "imports" if error is None else error,
                "",
                "",
                "imports",
                _met(error is None),
            )
        )
    t = r.get("throughput")
    server = r.get("server")
    if t and server:
        chosen = f"{server['loop']} + {server['http']}"
        fast = "uvloop" in server["loop"] and server["http"] in ("HttpToolsProtocol", "LimitedHttpTools")
        ratio = t["tollway"]["rps"] / t["tollway_asyncio_h11"]["rps"]
        out.append(
            Row(
                "S3",
                f"step: uvicorn's auto choice ({chosen}) vs asyncio + h11",
                _rps(t["tollway"]["rps"]),
                f"asyncio + h11 {_rps(t['tollway_asyncio_h11']['rps'])}",
                _x(ratio),
                "uvloop + httptools",
                _met(fast),
            )
        )
        ratio = t["tollway"]["rps"] / t["tollway_no_usage"]["rps"]
        out.append(
            Row(
                "S4",
                "cost of usage metering under uvicorn (flushed every 200 ms)",
                _rps(t["tollway"]["rps"]),
                f"no usage queue {_rps(t['tollway_no_usage']['rps'])}",
                _x(ratio),
                "—",
                "info",
            )
        )
    return out


def rows(r: dict[str, Any]) -> list[Row]:
    from tests.bench import cost, dev_server, grpc_bench  # they build Rows of this module

    return [
        *_cpu_rows(r),
        *_load_rows(r),
        _fanout_row(r),
        *_cold_rows(r),
        *_calls_rows(r),
        _flood_row(r),
        _rss_row(r),
        _race_row(r),
        *_step_rows(r),
        *dev_server.rows(r),
        *grpc_bench.rows(r),
        *cost.rows(r),
    ]


def render(table: list[Row]) -> str:
    lines = [
        "| # | measure | Tollway | baseline (same run) | ratio | target | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        cells = [row.num, row.measure, row.tollway, row.baseline, row.ratio, row.target, row.status]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
