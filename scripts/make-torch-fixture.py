#!/usr/bin/env python3
"""Writes testdata/checkpoint/state-dict.bin: a small PyTorch zip checkpoint
laid out exactly as torch.save(state_dict) lays it out (pickle protocol 2 in
archive/data.pkl, one archive/data/N record per storage, archive/version),
using only Python's standard library: torch is not installable here. The
pickle is CPython's own, so m3ectl's reader is tested against the real
pickler's bytes, not against its own writer.

Tensors (values are i/8 - 1 for element i):
  embeddings.word_embeddings.weight  float32  [4, 3]
  encoder.layer.0.output.dense.bias  float16  [3]
  pooler.dense.weight                bfloat16 [2, 2]
  shared.view                        float32  [2, 3], a view at offset 6 of
                                      the word-embedding storage (tied weights)
Run: python3 scripts/make-torch-fixture.py
"""
import collections, io, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
for name in ("FloatStorage", "HalfStorage", "BFloat16Storage"):
    setattr(torch, name, type(name, (), {"__module__": "torch"}))


def _rebuild_tensor_v2(*args):
    raise RuntimeError("only pickled, never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    def __init__(self, key, cls, raw, numel):
        self.key, self.cls, self.raw, self.numel = key, cls, raw, numel


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def vals(n):
    return [i / 8 - 1 for i in range(n)]


def f16(v):
    return b"".join(struct.pack("<e", x) for x in v)


def bf16(v):
    return b"".join(struct.pack("<f", x)[2:] for x in v)


word = Storage("0", torch.FloatStorage, struct.pack("<12f", *vals(12)), 12)
bias = Storage("1", torch.HalfStorage, f16(vals(3)), 3)
pool = Storage("2", torch.BFloat16Storage, bf16(vals(4)), 4)
sd = collections.OrderedDict()
sd["embeddings.word_embeddings.weight"] = Tensor(word, 0, (4, 3), (3, 1))
sd["encoder.layer.0.output.dense.bias"] = Tensor(bias, 0, (3,), (1,))
sd["pooler.dense.weight"] = Tensor(pool, 0, (2, 2), (2, 1))
sd["shared.view"] = Tensor(word, 6, (2, 3), (3, 1))

buf = io.BytesIO()
Pickler(buf, protocol=2).dump(sd)
out = sys.argv[1] if len(sys.argv) > 1 else "testdata/checkpoint/state-dict.bin"
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    z.writestr("archive/byteorder", "little")
    for s in (word, bias, pool):
        z.writestr("archive/data/" + s.key, s.raw)
    z.writestr("archive/version", "3\n")
