

# ---------------------------------------------------------------------------
# What every m3ectl Python model shares: its config parameters, the "text"
# input read and checked, token rows padded into the encoder's inputs, and
# one execute()'s requests gathered into rows and answered per request.
# numpy, the standard library and triton_python_backend_utils only.
# ---------------------------------------------------------------------------

import os as _os

import numpy as np
import triton_python_backend_utils as pb_utils


def _params(cfg):
    return {k: v.get("string_value", "") for k, v in (cfg.get("parameters") or {}).items()}


def _open_tokenizer(args, p):
    """The tokenizer m3ectl wrote into this model's version directory."""
    vdir = _os.path.join(args["model_repository"], args["model_version"])
    tok = BertTokenizer(_os.path.join(vdir, p["vocab"]), _os.path.join(vdir, p["tokenizer_spec"]),
                        max_length=int(p["max_length"]))
    return tok, vdir


def _texts(request):
    t = pb_utils.get_input_tensor_by_name(request, "text")
    if t is None:
        raise ValueError("input 'text' is missing")
    a = t.as_numpy()
    if a.ndim != 2 or a.shape[1] != 1:
        raise ValueError("input 'text' must have shape [N, 1] (one text per row), got %s" % list(a.shape))
    texts = []
    for v in a.reshape(-1):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("input 'text' holds invalid UTF-8")
        texts.append(v)
    return texts


def _encoder_inputs(rows, pad_id, inputs, width=None):
    """(name, array) per encoder input: rows padded to width (default: the
    longest row), the attention mask, and zero token types, each cast to the
    dtype the encoder declares."""
    width = width or max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for j, r in enumerate(rows):
        ids[j, :len(r)] = r
        mask[j, :len(r)] = 1
    out = []
    for name, dtype in inputs:
        if name == "attention_mask":
            a = mask
        elif name == "token_type_ids":
            a = np.zeros_like(mask)
        else:
            a = ids
        out.append((name, np.ascontiguousarray(a.astype(dtype))))
    return out


def _answer_rows(requests, tokenizer, run, describe):
    """Tokenises every request of one execute(), runs all their rows at once
    with run(rows) -> [rows, dim] array, and answers each request with its
    own rows. A request with bad input fails alone; when run fails, every
    waiting request hears why, prefixed by describe."""
    responses = [None] * len(requests)
    rows, owners = [], []
    for i, request in enumerate(requests):
        try:
            ids = [tokenizer.encode(s) for s in _texts(request)]
        except ValueError as e:
            responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))
            continue
        owners.append((i, len(rows), len(ids)))
        rows.extend(ids)
    if not rows:
        return responses
    try:
        emb = run(rows)
    except Exception as e:  # noqa: BLE001 - the model's caller gets the message, not a crash
        msg = "%s: %s" % (describe, e)
        for i, _, _ in owners:
            responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(msg))
        return responses
    for i, start, n in owners:
        out = pb_utils.Tensor("embeddings", np.ascontiguousarray(emb[start:start + n]))
        responses[i] = pb_utils.InferenceResponse(output_tensors=[out])
    return responses
