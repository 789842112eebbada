#!/usr/bin/env python3
"""Make the m3e-base-shaped comparison model and PyTorch's baseline, on the GPU machine.

Writes, under --work:
  m3e-base-rand/      a sentence-transformers folder (BERT 12x768, 12 heads, 3072,
                      vocab 21128, max pos 512; random seeded weights; mean pooling + Normalize)
  reference.json      fp32 sentence-transformers embeddings of the fixture's 30 texts and a
                      mixed-length set (with their token ids), for the Go engine's checks
  speedsets.json      the token-id batches both sides time (short ~17-token sentences,
                      64 x 128 tokens, a mixed-length set)
and under --out: torch_bench.json (PyTorch fp16 eager and torch.compile(mode="reduce-overhead")).
Nothing is downloaded: the vocabulary is the repository's testdata/m3e-tiny/vocab.txt.
"""
import argparse, json, os, random, shutil, statistics, sys, time

import torch
from transformers import AutoTokenizer, BertConfig, BertModel, BertTokenizer
from sentence_transformers import SentenceTransformer, models

ap = argparse.ArgumentParser()
ap.add_argument("--work", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--vocab", default="testdata/m3e-tiny/vocab.txt")
ap.add_argument("--fixture", default="testdata/m3e-tiny/reference.json")
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline (quick runs)")
ap.add_argument("--no-bench", action="store_true", help="make the model and references only")
ap.add_argument("--batches", default="8,32,128,512")
args = ap.parse_args()

torch.manual_seed(args.seed)
random.seed(args.seed)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
dev = "cuda"
os.makedirs(args.work, exist_ok=True)
os.makedirs(args.out, exist_ok=True)
mdir = os.path.join(args.work, "m3e-base-rand")
raw = os.path.join(args.work, "bert-raw")

t0 = time.time()
cfg = BertConfig(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                 hidden_act="gelu", layer_norm_eps=1e-12)
bert = BertModel(cfg, add_pooling_layer=True).eval()
# HF init leaves LayerNorm at (1, 0) and biases at 0: perturb them so a kernel that skips one is caught.
with torch.no_grad():
    for n, p in bert.named_parameters():
        if "LayerNorm.weight" in n:
            p.add_(torch.randn_like(p) * 0.1)
        elif n.endswith("bias"):
            p.add_(torch.randn_like(p) * 0.02)
bert.save_pretrained(raw, safe_serialization=True)
# The tokenizer must be m3e's 21128-entry vocabulary, or every Chinese
# character becomes [UNK] and the references check one embedding row only.
# (transformers 5 ignores BertTokenizer(vocab_file=...): it saved a tokenizer
# of the 5 special tokens.) Give it vocab.txt and load it the normal way.
vocab_list = [l.rstrip("\n") for l in open(args.vocab, encoding="utf-8")]
shutil.copy(args.vocab, os.path.join(raw, "vocab.txt"))
json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512},
          open(os.path.join(raw, "tokenizer_config.json"), "w"))
tk = AutoTokenizer.from_pretrained(raw)
if len(tk) != cfg.vocab_size:
    tk = BertTokenizer(vocab={w: i for i, w in enumerate(vocab_list)}, do_lower_case=True)
if len(tk) != cfg.vocab_size:
    sys.exit(f"tokenizer has {len(tk)} entries, want {cfg.vocab_size}: the references would be all [UNK]")
tk.save_pretrained(raw)
word = models.Transformer(raw, max_seq_length=512)
if len(word.tokenizer) != cfg.vocab_size or word.tokenizer("酒店很好")["input_ids"][1] == word.tokenizer.unk_token_id:
    sys.exit(f"sentence-transformers loaded a tokenizer of {len(word.tokenizer)} entries: want m3e's {cfg.vocab_size}")
st = SentenceTransformer(modules=[word, models.Pooling(768, "mean"), models.Normalize()], device=dev)
st.save(mdir)
print(f"model saved to {mdir} in {time.time()-t0:.1f}s", flush=True)

# --- references (fp32, sentence-transformers) ---
fx = json.load(open(args.fixture))
texts = [c["text"] for c in fx["cases"]]
rng = random.Random(args.seed)
cjk = list(range(670, 7992))
mixed_texts = []
vocab = [l.rstrip("\n") for l in open(args.vocab, encoding="utf-8")]
for n in [1, 3, 7, 15, 16, 17, 31, 40, 63, 64, 65, 100, 127, 128, 129, 200, 255, 300, 383, 450, 509, 510, 600]:
    mixed_texts.append("".join(vocab[rng.choice(cjk)] for _ in range(n)))
st.eval()
with torch.no_grad():
    ref_fix = st.encode(texts, batch_size=64, convert_to_numpy=True)
    ref_mix = st.encode(mixed_texts, batch_size=64, convert_to_numpy=True)
tok = st.tokenizer
def ids_of(ts):
    return [tok(t, truncation=True, max_length=512)["input_ids"] for t in ts]
want = [c["input_ids"] for c in fx["cases"]]
if ids_of(texts) != want:
    sys.exit("the comparison model's tokenizer gives other ids than the fixture's reference.json")
ref = {"about": "sentence-transformers fp32 (TF32 off) on " + torch.cuda.get_device_name(0),
       "fixture": [{"text": t, "ids": i, "embedding": e.tolist()} for t, i, e in zip(texts, ids_of(texts), ref_fix)],
       "mixed": [{"ids": i, "embedding": e.tolist()} for i, e in zip(ids_of(mixed_texts), ref_mix)]}
json.dump(ref, open(os.path.join(args.work, "reference.json"), "w"))
print(f"references: {len(ref['fixture'])} fixture + {len(ref['mixed'])} mixed, lengths {[len(m['ids']) for m in ref['mixed']]}", flush=True)

# --- speed sets: token ids both sides time ---
def row(n):
    return [101] + [rng.choice(cjk) for _ in range(n - 2)] + [102]
short = [row(rng.randint(10, 24)) for _ in range(512)]          # mean ~17 tokens
long = [row(128) for _ in range(64)]
mixed = [row(min(512, max(8, int(rng.lognormvariate(4.0, 0.9))))) for _ in range(64)]
one = row(17)
sets = {"one": one, "short": short, "long": long, "mixed": mixed}
json.dump(sets, open(os.path.join(args.work, "speedsets.json"), "w"))
print(f"speed sets: short mean {statistics.mean(map(len, short)):.1f} tokens, mixed mean {statistics.mean(map(len, mixed)):.1f} max {max(map(len, mixed))}", flush=True)
if args.no_bench:
    sys.exit(0)

# --- PyTorch baseline: fp16, padded batches as a PyTorch user runs them ---
m16 = BertModel.from_pretrained(raw, torch_dtype=torch.float16).to(dev).eval()

def embed(ids, mask):
    h = m16(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(h.dtype)
    v = (h * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(v.float(), dim=-1)

def pad(rows):
    L = max(map(len, rows))
    ids = torch.zeros(len(rows), L, dtype=torch.long)
    mask = torch.zeros(len(rows), L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids.to(dev), mask.to(dev)

def timeit(fn, ids, mask, min_reps=10, budget_s=1.5):
    with torch.inference_mode():
        for _ in range(3):
            fn(ids, mask)
        torch.cuda.synchronize()
        times = []
        start = time.time()
        while len(times) < min_reps or (time.time() - start < budget_s and len(times) < 200):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); fn(ids, mask); b.record(); b.synchronize()
            times.append(a.elapsed_time(b))
    return statistics.median(times)

cases = [("one", [one])] + [(f"short{b}", short[:b]) for b in map(int, args.batches.split(","))] + [("long64x128", long), ("mixed64", mixed)]
res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cases": {}}
variants = [("eager", embed)]
if not args.no_compile:
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = 64
    variants.append(("compiled", torch.compile(embed, mode="reduce-overhead", dynamic=False)))
for vname, fn in variants:
    for cname, rows in cases:
        ids, mask = pad(rows)
        t = time.time()
        ms = timeit(fn, ids, mask)
        r = res["cases"].setdefault(cname, {"rows": len(rows), "tokens": sum(map(len, rows)), "padded_tokens": ids.numel()})
        r[vname + "_ms"] = ms
        r[vname + "_per_s"] = len(rows) / ms * 1e3
        json.dump(res, open(os.path.join(args.work, "torch_bench.json"), "w"), indent=1)
        print(f"torch {vname:8s} {cname:12s} {ms:8.3f} ms  {len(rows)/ms*1e3:10.0f} sentences/s  (incl. warm-up/compile {time.time()-t:.0f}s)", flush=True)
res["max_memory_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
json.dump(res, open(os.path.join(args.out, "torch_bench.json"), "w"), indent=1)
json.dump(res, open(os.path.join(args.work, "torch_bench.json"), "w"), indent=1)
