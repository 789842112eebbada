# BERT WordPiece tokenizer in pure Python (standard library only), written by
# m3ectl into Triton model repositories so that the stock Triton image, whose
# Python backend has numpy and nothing else, can tokenise.
#
# It is a line-by-line port of m3ectl's Go tokenizer (pkg/tokenizer/encode.go),
# which reproduces transformers.BertTokenizer (the tokenizers library): added
# tokens matched in the raw text, then clean text -> isolate CJK ideographs ->
# NFD and drop non-spacing marks -> lower-case -> split on whitespace and
# punctuation -> greedy longest-match WordPiece, wrapped in [CLS] ... [SEP]
# and truncated. The Unicode facts come from bert_tokenizer.json, written by
# m3ectl from the same tables the Go tokenizer uses, never from this
# interpreter's unicodedata: the tokenizers library mixes Unicode versions.

import bisect
import json
import re

P_CONTROL, P_SPACE, P_PUNCT, P_MN, P_CHINESE, P_NFD, P_LOWER = 1, 2, 4, 8, 16, 32, 64

# ASCII classes as the normaliser and pre-tokenizer see them.
A_WORD, A_SPACE, A_CTRLSPACE, A_CONTROL, A_PUNCT = 0, 1, 2, 3, 4


def _ascii_classes():
    c = []
    for i in range(128):
        if i in (0x20, 0x09, 0x0A, 0x0D):
            c.append(A_SPACE)
        elif i in (0x0B, 0x0C):
            c.append(A_CTRLSPACE)
        elif i < 0x20 or i == 0x7F:
            c.append(A_CONTROL)
        elif 33 <= i <= 47 or 58 <= i <= 64 or 91 <= i <= 96 or 123 <= i <= 126:
            c.append(A_PUNCT)
        else:
            c.append(A_WORD)
    return c


ASCII_CLASS = _ascii_classes()

HANGUL_BASE, HANGUL_LAST = 0xAC00, 0xD7A3
HANGUL_L, HANGUL_V, HANGUL_T, HANGUL_TN, HANGUL_NN = 0x1100, 0x1161, 0x11A7, 28, 21 * 28


def read_vocab(path):
    """vocab.txt: one token per line, the line number is the id; a later
    duplicate wins; line endings (and any trailing \\r) are dropped."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    vocab = {}
    for i, line in enumerate(lines):
        vocab[line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")] = i
    return vocab, len(lines)


class BertTokenizer:
    """Encodes text to input ids exactly as m3ectl's Go tokenizer does."""

    def __init__(self, vocab_path, spec_path, max_length=None):
        with open(spec_path, "r", encoding="utf-8") as f:
            spec = json.load(f)
        self.vocab, self.vocab_size = read_vocab(vocab_path)
        self.lower = bool(spec["lower"])
        self.strip = bool(spec["strip_accents"])
        self.chinese = bool(spec["chinese_chars"])
        self.clean = bool(spec["clean_text"])
        self.max_length = int(spec["max_length"])
        if max_length:
            self.max_length = int(max_length)
        self.prefix = spec["continuing_subword_prefix"]
        self.max_chars = int(spec["max_input_chars_per_word"])
        unk = spec["unk_token"]
        if unk not in self.vocab:
            raise ValueError("unknown token %r is not in the vocabulary" % unk)
        self.unk = self.vocab[unk]
        self.before = list(spec["prefix_ids"] or [])
        self.after = list(spec["suffix_ids"] or [])
        floor = len(self.before) + len(self.after) + 1
        if self.max_length < floor:
            self.max_length = floor
        added = spec.get("added_tokens") or []
        self.added = {a["content"]: a["id"] for a in added if a["content"]}
        self.added_re = None
        if self.added:
            alts = sorted(self.added, key=len, reverse=True)  # longest first at one position
            self.added_re = re.compile("|".join(re.escape(a) for a in alts))
        self.max_word = max((len(t) for t in self.vocab), default=0)
        u = spec["unicode"]
        props = u["props"]
        self.run_starts = props[0::2]
        self.run_props = props[1::2]
        bmp = bytearray(0x10000)
        for i, start in enumerate(self.run_starts):
            if start >= 0x10000:
                break
            end = self.run_starts[i + 1] if i + 1 < len(self.run_starts) else 0x10000
            bmp[start:min(end, 0x10000)] = bytes([self.run_props[i]]) * (min(end, 0x10000) - start)
        self.bmp = bytes(bmp)
        low = u["lower"]
        self.lower_map = dict(zip(low[0::2], low[1::2]))
        self.nfd = {int(k): v for k, v in u["nfd"].items()}

    def props(self, r):
        if r < 0x10000:
            return self.bmp[r]
        return self.run_props[bisect.bisect_right(self.run_starts, r) - 1]

    def encode(self, text):
        """Returns the ids of text: [CLS] ... [SEP], truncated to max_length."""
        return _Encoder(self, self.max_length - len(self.after)).run(text)

    def words(self, text):
        """The pre-tokenized words (for tests against the tokenizers library)."""
        e = _Encoder(self, 1 << 62)
        e.words = []
        e.segment(text)
        return e.words


class _Truncated(Exception):
    pass


class _Encoder:
    def __init__(self, t, limit):
        self.t = t
        self.limit = limit
        self.out = []
        self.word = []  # the current word's runes (its first max_chars)
        self.wrunes = 0
        self.pending = []  # kept non-starters awaiting canonical ordering: (ccc, rune)
        self.words = None

    def emit(self, i):
        if len(self.out) >= self.limit:
            raise _Truncated()
        self.out.append(i)

    def run(self, text):
        t = self.t
        try:
            for i in t.before:
                self.emit(i)
            if t.added_re is None:
                self.segment(text)
            else:
                pos = 0
                for m in t.added_re.finditer(text):
                    self.segment(text[pos:m.start()])
                    self.emit(t.added[m.group(0)])
                    pos = m.end()
                self.segment(text[pos:])
        except _Truncated:
            pass
        return self.out + t.after

    def segment(self, s):
        t = self.t
        clean, lower = t.clean, t.lower
        for ch in s:
            c = ord(ch)
            if c >= 0x80:
                self.rune(c)
                continue
            k = ASCII_CLASS[c]
            if k == A_WORD:
                if self.pending:
                    self.flush_pending()
                if lower and 0x41 <= c <= 0x5A:
                    c += 32
                self.append(c)
            elif k == A_SPACE:
                self.split()
            elif k == A_PUNCT:
                self.split()
                self.single(c)
            elif k == A_CTRLSPACE:
                if not clean:
                    self.split()
            elif not clean:  # A_CONTROL
                if self.pending:
                    self.flush_pending()
                self.append(c)
        self.split()

    def split(self):
        if self.pending:
            self.flush_pending()
        self.flush_word()

    def rune(self, r):
        t = self.t
        if 0x3400 <= r <= 0x9FFF and (r >= 0x4E00 or r <= 0x4DBF):
            if t.chinese:
                self.split()
                self.single(r)
                return
            if self.pending:
                self.flush_pending()
            self.append(r)
            return
        p = t.props(r)
        if p == 0 and r != 0xFFFD:
            if self.pending:
                self.flush_pending()
            self.append(r)
            return
        if t.clean:
            if r == 0xFFFD or p & P_CONTROL:
                return
            if p & P_SPACE:
                self.split()
                return
        if t.chinese and p & P_CHINESE:
            self.split()
            self.decompose(r, p)
            self.split()
            return
        self.decompose(r, p)

    def decompose(self, r, p):
        t = self.t
        if not t.strip:
            self.post(r, p)
            return
        if not p & P_NFD:
            self.nfd_rune(r, p, 0)
            return
        if HANGUL_BASE <= r <= HANGUL_LAST:
            s = r - HANGUL_BASE
            self.nfd_rune(HANGUL_L + s // HANGUL_NN, 0, 0)
            self.nfd_rune(HANGUL_V + (s % HANGUL_NN) // HANGUL_TN, 0, 0)
            tr = s % HANGUL_TN
            if tr:
                self.nfd_rune(HANGUL_T + tr, 0, 0)
            return
        d = t.nfd[r]
        for i in range(0, len(d), 2):
            self.nfd_rune(d[i], t.props(d[i]), d[i + 1])

    def nfd_rune(self, r, p, ccc):
        mn = p & P_MN
        if ccc == 0:
            if self.pending:
                self.flush_pending()
            if not mn:
                self.post(r, p)
            return
        if mn:
            return
        self.pending.append((ccc, r))

    def flush_pending(self):
        rs = self.pending
        self.pending = []
        rs.sort(key=lambda x: x[0])  # stable: canonical ordering
        for _, r in rs:
            self.post(r, self.t.props(r))

    def post(self, r, p):
        t = self.t
        if t.lower and p & P_LOWER:
            if r == 0x130:  # the one rune whose full lower case is two runes
                self.pretok(0x69, 0)
                self.pretok(0x307, t.props(0x307))
                return
            r = t.lower_map.get(r, r)
            p = t.props(r)
        self.pretok(r, p)

    def pretok(self, r, p):
        if r < 0x80:
            k = ASCII_CLASS[r]
            if k == A_SPACE or k == A_CTRLSPACE:
                self.flush_word()
            elif k == A_PUNCT:
                self.flush_word()
                self.single(r)
            else:
                self.append(r)
            return
        if p & P_SPACE:
            self.flush_word()
        elif p & P_PUNCT:
            self.flush_word()
            self.single(r)
        else:
            self.append(r)

    def append(self, r):
        self.wrunes += 1
        if self.wrunes <= self.t.max_chars:
            self.word.append(chr(r))

    def single(self, r):
        if self.words is not None:
            self.words.append(chr(r))
            return
        self.emit(self.t.vocab.get(chr(r), self.t.unk))

    def flush_word(self):
        t = self.t
        n = self.wrunes
        if n == 0:
            return
        word = "".join(self.word)
        self.word = []
        self.wrunes = 0
        if self.words is not None:
            self.words.append(word)
        elif n > t.max_chars:
            self.emit(t.unk)
        elif n == 1:
            self.emit(t.vocab.get(word, t.unk))
        else:
            for i in self.pieces(word):
                self.emit(i)

    def pieces(self, word):
        """Greedy longest-match-first WordPiece; a word with a part that
        matches nothing is the unknown token alone."""
        t = self.t
        vocab, prefix = t.vocab, t.prefix
        ids = []
        start, n = 0, len(word)
        while start < n:
            end = min(n, start + t.max_word)
            found = None
            while end > start:
                sub = word[start:end]
                if start > 0:
                    sub = prefix + sub
                i = vocab.get(sub)
                if i is not None:
                    found = i
                    break
                end -= 1
            if found is None:
                return [t.unk]
            ids.append(found)
            start = end
        return ids
