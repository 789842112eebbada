# Runs one Python model of a Triton repository under plain CPython the way
# Triton's Python backend would (python_backend@r26.07 src/pb_stub.cc and
# README "execute"): model.py is imported from its version folder with that
# folder on sys.path, TritonPythonModel().initialize(args) gets the
# documented args, execute(requests) gets a list of requests and must return
# one InferenceResponse per request, each output checked against the model's
# config as Triton checks it. The stand-in triton_python_backend_utils sits
# beside this file.
#
#   python3 run_model.py < job.json > result.json
#
# job: {"model_dir", "version", "config" (Triton's JSON of config.pbtxt),
#       "instance_kind", "batches": [[{"inputs": {name: {"shape", "data"}}}]]}
#       or "tokenize": [text, ...] / "words": {"cfg": {...}, "texts": [...]}
#       to drive the model's BertTokenizer directly.

import hashlib
import importlib.util
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import triton_python_backend_utils as pb_utils  # noqa: E402  (the stand-in)


def load(job):
    vdir = os.path.join(job["model_dir"], str(job["version"]))
    sys.path.append(vdir)  # pb_stub.cc appends the version folder
    spec = importlib.util.spec_from_file_location("model", os.path.join(vdir, "model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Request:
    def __init__(self, tensors, requested):
        self._inputs = tensors
        self._requested = requested

    def inputs(self):
        return self._inputs

    def requested_output_names(self):
        return self._requested

    def is_cancelled(self):
        return False


def make_request(cfg, r):
    tensors = []
    for name, t in r["inputs"].items():
        io = pb_utils.get_input_config_by_name(cfg, name)
        if io is None:
            raise SystemExit("job: input %s is not in the config" % name)
        dt = pb_utils.triton_string_to_numpy(io["data_type"])
        if dt == np.object_:
            a = np.array([s.encode("utf-8") for s in t["data"]], dtype=np.object_).reshape(t["shape"])
        else:
            a = np.array(t["data"], dtype=dt).reshape(t["shape"])
        tensors.append(pb_utils.Tensor(name, a))
    return Request(tensors, [o["name"] for o in cfg.get("output", [])])


def check_response(cfg, req, resp):
    """What Triton's Python backend and core enforce on a response."""
    if not isinstance(resp, pb_utils.InferenceResponse):
        raise AssertionError("execute returned %r, not an InferenceResponse" % type(resp).__name__)
    if resp.has_error():
        return {"error": resp.error().message()}
    batch = req.inputs()[0].as_numpy().shape[0] if cfg.get("max_batch_size", 0) > 0 else None
    out = {}
    for t in resp.output_tensors():
        io = pb_utils.get_output_config_by_name(cfg, t.name())
        if io is None:
            raise AssertionError("response has output %s that the config does not declare" % t.name())
        a = t.as_numpy()
        want = np.dtype(pb_utils.triton_string_to_numpy(io["data_type"]))
        if a.dtype != want:
            raise AssertionError("output %s is %s, the config says %s" % (t.name(), a.dtype, io["data_type"]))
        dims = [int(d) for d in io["dims"]]
        shape = list(a.shape)
        if batch is not None:
            if not shape or shape[0] != batch:
                raise AssertionError("output %s has shape %s for a batch of %d" % (t.name(), shape, batch))
            shape = shape[1:]
        if len(shape) != len(dims) or any(d != -1 and d != s for d, s in zip(dims, shape)):
            raise AssertionError("output %s has shape %s, the config says %s" % (t.name(), list(a.shape), dims))
        out[t.name()] = {"shape": list(a.shape), "data": a.reshape(-1).tolist()}
    return {"outputs": out}


def words_hashes(tok_cls, vocab, spec, cfg):
    """Per 4096-code-point block, the hash testdata/tokenizer/codepoints.json
    holds (see pkg/tokenizer/codepoints_test.go)."""
    t = tok_cls(vocab, spec)
    t.clean, t.chinese, t.lower = cfg["clean"], cfg["chinese"], cfg["lower"]
    t.strip = cfg["lower"] if cfg.get("strip") is None else cfg["strip"]
    blocks = []
    only = cfg.get("blocks")
    for blk in range(0x110000 // 4096):
        if only is not None and blk not in only:
            blocks.append("")
            continue
        h = hashlib.sha256()
        for r in range(blk * 4096, (blk + 1) * 4096):
            if 0xD800 <= r <= 0xDFFF:
                continue
            c = chr(r)
            text = "x" + c + "x " + c
            h.update(text.encode("utf-8") + b"\0" + "\x01".join(t.words(text)).encode("utf-8") + b"\n")
        blocks.append(h.hexdigest()[:16])
    return blocks


def imports(path):
    """Every module model.py imports, wherever the import statement is."""
    import ast
    with open(path, "r", encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("__import__", "exec", "eval"):
            names.add("<dynamic:%s>" % node.func.id)
    out = []
    for n in sorted(names):
        top = n.split(".")[0]
        kind = "stdlib" if top in sys.stdlib_module_names else "other"
        out.append({"module": n, "kind": kind})
    return out


def main():
    job = json.load(sys.stdin)
    vdir = os.path.join(job["model_dir"], str(job["version"]))
    if "imports" in job:
        json.dump({"imports": imports(os.path.join(vdir, "model.py"))}, sys.stdout)
        return
    mod = load(job)
    if "tokenize" in job:
        t = mod.BertTokenizer(os.path.join(vdir, job["vocab"]), os.path.join(vdir, job["spec"]))
        json.dump({"ids": [t.encode(s) for s in job["tokenize"]]}, sys.stdout)
        return
    if "words" in job:
        json.dump({"blocks": words_hashes(mod.BertTokenizer, os.path.join(vdir, job["vocab"]),
                                          os.path.join(vdir, job["spec"]), job["words"])}, sys.stdout)
        return
    cfg = json.loads(job["config"])
    args = {"model_config": job["config"], "model_instance_kind": job.get("instance_kind", "CPU"),
            "model_instance_name": cfg["name"] + "_0", "model_instance_device_id": "0",
            "model_repository": job["model_dir"], "model_version": str(job["version"]),
            "model_name": cfg["name"]}
    model = mod.TritonPythonModel()
    if hasattr(model, "initialize"):
        model.initialize(args)
    results = []
    for batch in job["batches"]:
        reqs = [make_request(cfg, r) for r in batch]
        resps = model.execute(reqs)
        if not isinstance(resps, list) or len(resps) != len(reqs):
            raise AssertionError("execute must return a list with one response per request")
        results.append([check_response(cfg, q, p) for q, p in zip(reqs, resps)])
    if hasattr(model, "finalize"):
        model.finalize()
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
