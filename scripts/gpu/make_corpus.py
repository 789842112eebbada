#!/usr/bin/env python3
"""The bulk-embedding corpus of issue 16: N mixed-length Chinese texts made
from the sentences of the seed article (../shared/reference), one per line.
Sentences are cut at Chinese and Western sentence and clause punctuation
(。!?;, and their ASCII forms), the units m3e embeds as "sentences".

Each text joins k consecutive sentences, k geometric with p=1/2 (half are one
sentence, a quarter two, ...), starting at a random sentence, and stops before
it would pass 510 characters (each Chinese character is one token, so texts
stay inside m3e's 512-token window with [CLS] and [SEP]). Seeded: the same
file every run. Usage: make_corpus.py ARTICLE OUT [N]
"""
import random, re, sys

src, out = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
text = open(src, encoding="utf-8").read()
parts = re.split(r"[。!?;,,!?;\n]+", text)
sents = [p.strip(" \t,,、•") for p in parts]
sents = [s for s in sents if len(re.findall(r"[\u4e00-\u9fff]", s)) >= 4 and "`" not in s]
rng = random.Random(16)
with open(out, "w", encoding="utf-8") as f:
    for _ in range(n):
        k = 1
        while rng.random() < 0.5:
            k += 1
        i = rng.randrange(len(sents))
        t = sents[i]
        for j in range(1, k):
            nxt = sents[(i + j) % len(sents)]
            if len(t) + 1 + len(nxt) > 510:
                break
            t += "," + nxt
        f.write(t[:510] + "\n")
print(f"{n} texts from {len(sents)} sentences -> {out}", file=sys.stderr)
