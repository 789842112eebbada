#!/usr/bin/env python3
"""Issue 16's bulk-embedding baseline, on the GPU machine, after
make_model_and_baseline.py --no-bench made m3e-base-rand under --work.

1. Makes m3e-large-rand beside it: the same recipe at 24 layers x 1024
   (16 heads, 4096), m3e's vocabulary, random seeded weights, mean pooling
   + Normalize.
2. Times SentenceTransformer.encode(texts, batch_size=256) in fp16 (model
   loaded and .half(), one warm-up encode of 2,048 texts first; the figure
   is the encode call alone) over the corpus, for both models.
3. With --check NPY JSONL: compares m3ectl's .npy rows with its embed JSON
   lines and with sentence-transformers fp16 on the first rows.
Writes st-<model>.json under --out; prints one line per model.
"""
import argparse, json, os, sys, time

import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--work", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--corpus", required=True)
ap.add_argument("--models", default="m3e-base-rand,m3e-large-rand")
ap.add_argument("--vocab", default="testdata/m3e-tiny/vocab.txt")
ap.add_argument("--make-only", action="store_true", help="make m3e-large-rand and stop")
ap.add_argument("--check", nargs="*", default=[], help="MODEL NPY JSONL triples to compare")
args = ap.parse_args()
torch.manual_seed(16)
texts = [l.rstrip("\n") for l in open(args.corpus, encoding="utf-8")]


def make_large():
    from transformers import BertConfig, BertModel
    from sentence_transformers import SentenceTransformer, models
    mdir = os.path.join(args.work, "m3e-large-rand")
    if os.path.exists(os.path.join(mdir, "modules.json")):
        return
    base = os.path.join(args.work, "bert-raw")  # tokenizer files of the base recipe
    raw = os.path.join(args.work, "bert-large-raw")
    cfg = BertConfig(vocab_size=21128, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, max_position_embeddings=512, type_vocab_size=2,
                     hidden_act="gelu", layer_norm_eps=1e-12)
    bert = BertModel(cfg, add_pooling_layer=True).eval()
    with torch.no_grad():
        for n, p in bert.named_parameters():
            if "LayerNorm.weight" in n:
                p.add_(torch.randn_like(p) * 0.1)
            elif n.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.02)
    bert.save_pretrained(raw, safe_serialization=True)
    for f in os.listdir(base):
        if f.startswith("tokenizer") or f in ("vocab.txt", "special_tokens_map.json"):
            with open(os.path.join(base, f), "rb") as src, open(os.path.join(raw, f), "wb") as dst:
                dst.write(src.read())
    word = models.Transformer(raw, max_seq_length=512)
    st = SentenceTransformer(modules=[word, models.Pooling(1024, "mean"), models.Normalize()], device="cuda")
    st.save(mdir)


def baseline(name):
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(os.path.join(args.work, name), device="cuda")
    st.half()
    st.encode(texts[:2048], batch_size=256, convert_to_numpy=True)
    torch.cuda.synchronize()
    t = time.perf_counter()
    emb = st.encode(texts, batch_size=256, convert_to_numpy=True)
    torch.cuda.synchronize()
    s = time.perf_counter() - t
    np.save(os.path.join(args.out, f"st-{name}-head.npy"), emb[:2000].astype(np.float32))
    r = {"model": name, "texts": len(texts), "encode_s": s, "texts_per_s": len(texts) / s,
         "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    json.dump(r, open(os.path.join(args.out, f"st-{name}.json"), "w"))
    print(f"sentence-transformers fp16 {name}: {len(texts)} texts in {s:.2f} s = {len(texts)/s:,.0f} texts/s", flush=True)
    del st
    torch.cuda.empty_cache()


def check(name, npy, jsonl):
    a = np.load(npy)
    rows = [json.loads(l) for l in open(jsonl)]
    j = np.array([r["embedding"] for r in rows], dtype=np.float32)
    n = len(j)
    d = np.abs(a[:n].astype(np.float32) - j).max()
    st = np.load(os.path.join(args.out, f"st-{name}-head.npy"))
    m = min(n, len(st))
    cos = (a[:m].astype(np.float32) * st[:m]).sum(1) / np.linalg.norm(a[:m].astype(np.float32), axis=1) / np.linalg.norm(st[:m], axis=1)
    print(f"check {os.path.basename(npy)} ({a.dtype}, {a.shape}): max |npy - embed JSON| over {n} rows {d:.2e}; "
          f"vs sentence-transformers fp16: min cosine {cos.min():.6f}", flush=True)


if args.check:
    for i in range(0, len(args.check), 3):
        check(*args.check[i:i + 3])
    sys.exit(0)
if "m3e-large-rand" in args.models:
    t = time.time()
    make_large()
    print(f"m3e-large-rand ready in {time.time()-t:.1f}s", flush=True)
if args.make_only:
    sys.exit(0)
for name in args.models.split(","):
    baseline(name)
