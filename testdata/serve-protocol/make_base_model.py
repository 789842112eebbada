#!/usr/bin/env python3
"""Write an m3e-base-shaped model (BERT 12 x 768, 12 heads, 3072, vocab 21128,
random seeded weights) for BenchmarkEngineVsServer on a machine with PyTorch:
model.onnx (inputs input_ids/attention_mask, output `output` = last hidden
state, as the article exports it), model.safetensors + config.json (for the
cuda backend), vocab.txt, and sentence-transformers pooling files (mean +
Normalize). Speed does not depend on weight values.

Usage: make_base_model.py OUT_DIR VOCAB_TXT
"""
import json, os, shutil, sys

import torch
from transformers import BertConfig, BertModel

out, vocab = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
os.makedirs(os.path.join(out, "2_Normalize"), exist_ok=True)
torch.manual_seed(7)
cfg = BertConfig(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512)
bert = BertModel(cfg, add_pooling_layer=False).eval()
bert.save_pretrained(out, safe_serialization=True)
shutil.copy(vocab, os.path.join(out, "vocab.txt"))
json.dump([
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
], open(os.path.join(out, "modules.json"), "w"))
json.dump({"word_embedding_dimension": 768, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
           "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False},
          open(os.path.join(out, "1_Pooling", "config.json"), "w"))


class LastHidden(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


ids = torch.ones(2, 16, dtype=torch.long)
axes = {0: "batch_size", 1: "max_seq_len"}
torch.onnx.export(LastHidden(bert), (ids, ids.clone()), os.path.join(out, "model.onnx"),
                  input_names=["input_ids", "attention_mask"], output_names=["output"],
                  dynamic_axes={"input_ids": axes, "attention_mask": axes, "output": {0: "batch_size", 1: "seq"}},
                  opset_version=14, dynamo=False)
print("wrote", out)
