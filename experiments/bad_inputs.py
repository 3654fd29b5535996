"""A corpus of bad inputs for the API: each must get a 4xx with a JSON error message, and the
server must keep serving. Run against a live server:

    python -m experiments.bad_inputs --url http://127.0.0.1:8080

Writes experiments/results/bad_inputs.json and .md (status and error code per case).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

EXPLAIN = "/api/v1/explain"
JSON = {"content-type": "application/json"}


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: bytes | None
    headers: dict
    expect: tuple[int, ...]


def _j(obj) -> bytes:
    return json.dumps(obj).encode()


def corpus() -> list[Case]:
    c: list[Case] = []

    def add(name, body, expect=(400, 422), path=EXPLAIN, method="POST", headers=None):
        raw = body if isinstance(body, bytes) or body is None else _j(body)
        c.append(Case(name, method, path, raw, headers if headers is not None else JSON, expect))

    ok_target = {"position": 2, "chat": False}
    add("empty prompt", {"prompt": ""})
    add("whitespace prompt", {"prompt": "   \n\t  "})
    add("only newlines", {"prompt": "\n\n\n"})
    add("missing prompt", {"target": ok_target})
    add("prompt null", {"prompt": None})
    add("prompt number", {"prompt": 42})
    add("prompt list", {"prompt": ["a", "b"]})
    add("prompt object", {"prompt": {"text": "hi"}})
    add("prompt bool", {"prompt": True})
    add("1 MB prompt", {"prompt": "a" * 1_000_000}, expect=(413,))
    add("prompt over char limit", {"prompt": "word " * 5000}, expect=(413, 422))
    add("prompt over token limit", {"prompt": "word " * 1500, "target": {"position": 3}}, expect=(400, 422))
    add("target position 0", {"prompt": "Hello world", "target": {"position": 0}})
    add("target position negative", {"prompt": "Hello world", "target": {"position": -3}})
    add("target position beyond text", {"prompt": "Hello world", "target": {"position": 500, "chat": False}})
    add("target position float", {"prompt": "Hello world", "target": {"position": 1.5}})
    add("target position string", {"prompt": "Hello world", "target": {"position": "two"}})
    add("target position huge", {"prompt": "Hello world", "target": {"position": 10**12}})
    add("generated negative", {"prompt": "Hello", "target": {"generated": -1}})
    add("generated too large", {"prompt": "Hello", "target": {"generated": 1000}})
    add("both position and generated", {"prompt": "Hello world", "target": {"position": 1, "generated": 0}})
    add("max_new_tokens zero", {"prompt": "Hello", "target": {"max_new_tokens": 0}})
    add("max_new_tokens huge", {"prompt": "Hello", "target": {"max_new_tokens": 100000}})
    add("unknown target field", {"prompt": "Hello", "target": {"pos": 1}})
    add("target not object", {"prompt": "Hello", "target": 3})
    add("unknown method", {"prompt": "Hello", "method": "magic"})
    add("method too long", {"prompt": "Hello", "method": "m" * 500})
    add("unknown quality", {"prompt": "Hello", "quality": "turbo"})
    add("quality number", {"prompt": "Hello", "quality": 3})
    add("unknown option", {"prompt": "Hello", "options": {"speed": 11}})
    add("num_probes zero", {"prompt": "Hello", "options": {"num_probes": 0}})
    add("num_probes huge", {"prompt": "Hello", "options": {"num_probes": 10**6}})
    add("num_probes string", {"prompt": "Hello", "options": {"num_probes": "ten"}})
    add("beta negative", {"prompt": "Hello", "options": {"beta": -1}})
    add("beta and gamma zero", {"prompt": "Hello", "options": {"beta": 0, "gamma": 0}})
    add("gamma NaN", b'{"prompt": "Hello", "options": {"gamma": NaN}}')
    add("seed negative", {"prompt": "Hello", "options": {"seed": -5}})
    add("unknown mask", {"prompt": "Hello", "options": {"mask": "blur"}})
    add("unknown estimator", {"prompt": "Hello", "options": {"estimator": "exact"}})
    add("max_tokens zero", {"prompt": "Hello", "options": {"max_tokens": 0}})
    add("time budget negative", {"prompt": "Hello", "options": {"time_budget_s": -1}})
    add("unknown top-level field", {"prompt": "Hello", "admin": True})
    add("async not bool", {"prompt": "Hello", "async": "maybe"})
    add("body is a list", [1, 2, 3])
    add("body is a string", "just a string")
    add("body is null", None)
    add("empty body", b"")
    add("truncated JSON", b'{"prompt": "Hel')
    add("not JSON", b"prompt=Hello")
    add("invalid UTF-8", b'{"prompt": "\xff\xfe\xfd"}')
    add("wrong content type", b"Hello", headers={"content-type": "text/plain"})
    add("form content type", b"prompt=Hello", headers={"content-type": "application/x-www-form-urlencoded"})
    add("huge JSON nesting", b'{"prompt": "Hi", "options": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    add("deep nesting in target", {"prompt": "Hi", "target": {"chat": [[[[[[[[[[1]]]]]]]]]]}})
    add("control characters only", {"prompt": "\x00\x01\x02\x03"}, expect=(200, 400, 422))
    add("zero-width only", {"prompt": "\u200b\u200c\u200d\ufeff"}, expect=(200, 400, 422))
    add("unknown job id", None, expect=(404,), path="/api/v1/jobs/does-not-exist", method="GET", headers={})
    add("cancel unknown job", None, expect=(404,), path="/api/v1/jobs/nope", method="DELETE", headers={})
    add("job id path traversal", None, expect=(404,), path="/api/v1/jobs/..%2F..%2Fetc%2Fpasswd", method="GET",
        headers={})
    add("GET on explain", None, expect=(404, 405), method="GET", headers={})
    add("unknown route", None, expect=(404,), path="/api/v1/nothing", method="GET", headers={})
    add("admin without token", None, expect=(403,), path="/api/v1/admin/clear-cache", headers={})
    add("admin wrong token", None, expect=(403,), path="/api/v1/admin/clear-cache", headers={"x-admin-token": "x"})
    return c


def run(url: str, cases: list[Case] | None = None, timeout: float = 120.0) -> list[dict]:
    import httpx

    out = []
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for case in cases or corpus():
            r = client.request(case.method, case.path, content=case.body, headers=case.headers)
            try:
                err = r.json().get("error", {})
            except ValueError:
                err = {}
            out.append({"case": case.name, "status": r.status_code, "code": err.get("code"),
                        "message": err.get("message"), "expected": list(case.expect),
                        "ok": r.status_code in case.expect and (r.status_code == 200 or bool(err.get("message")))})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    args = ap.parse_args(argv)
    from experiments.common import write_results

    rows = run(args.url)
    write_results("bad_inputs", {"url_host": "loopback", "results": rows},
                  ["case", "status", "code", "ok"], [[r["case"], r["status"], r["code"], r["ok"]] for r in rows],
                  "python -m experiments.bad_inputs --url http://127.0.0.1:PORT",
                  notes=f"{sum(r['ok'] for r in rows)}/{len(rows)} answered as expected (4xx with a JSON message).")
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
