"""Both sides of nlmmap-adapter/1 validate against the shipped JSON Schema: the recorded real
kernel's requests and answers, and the model adapter's answers to the same requests."""

import json

import jsonschema

from nlmmap.model.adapter import ModelBackend
from nlmmap.spec.adapter import handle_line, schema


def validators():
    sch = schema()
    defs = sch["$defs"]

    def sub(node):
        return jsonschema.Draft202012Validator(dict(node, **{"$defs": defs}))

    return sub(defs["request"]), sub(defs["error"]), {op: sub(n) for op, n in defs["ok"].items()}


def check_answer(req, ans, err_v, ok_v):
    (ok_v[req["op"]] if ans.get("ok") else err_v).validate(ans)


def test_schema_is_valid():
    jsonschema.Draft202012Validator.check_schema(schema())


def test_recorded_kernel_and_model_answers_follow_the_schema(shared):
    req_v, err_v, ok_v = validators()
    pairs = []
    lines = shared("reference", "adapter-transcript-excerpt.txt").read_text().splitlines()
    for a, b in zip(lines, lines[1:], strict=False):
        if a.startswith("> ") and b.startswith("< "):
            pairs.append((json.loads(a[2:]), json.loads(b[2:])))
    assert len(pairs) > 50
    model = ModelBackend()
    for req, recorded in pairs:
        req_v.validate(req)
        check_answer(req, recorded, err_v, ok_v)
        check_answer(req, handle_line(model, json.dumps(req)), err_v, ok_v)


def test_schema_rejects_malformed():
    req_v, err_v, ok_v = validators()
    assert not req_v.is_valid({"id": 1, "op": "peek", "sock": 1})
    assert not req_v.is_valid({"id": 1, "op": "poke", "sock": 1, "offset": 0, "data": "xyz"})
    assert not ok_v["poll"].is_valid({"id": 1, "ok": True, "revents": ["POLLHUP"]})
    assert not err_v.is_valid({"id": 1, "ok": False, "errno": "einval", "message": ""})
