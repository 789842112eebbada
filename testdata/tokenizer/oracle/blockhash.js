const t = require('tokenizers');
const crypto = require('crypto');
const fs = require('fs');
const cfgs = [
  {clean: true, chinese: true, lower: true, strip: null},
  {clean: false, chinese: true, lower: false, strip: null},
  {clean: true, chinese: false, lower: true, strip: false},
  {clean: true, chinese: true, lower: false, strip: true},
];
const pre = t.bertPreTokenizer();
const out = {about: "Per 4096-code-point block, the first 8 bytes (hex) of SHA-256 over lines text NUL words-joined-by-SOH LF, where text is 'x'+c+'x '+c for every scalar value c of the block and words are what the tokenizers library (npm tokenizers 0.23.2) BertNormalizer + BertPreTokenizer produce.", configs: []};
for (const cfg of cfgs) {
  const o = {cleanText: cfg.clean, handleChineseChars: cfg.chinese, lowercase: cfg.lower};
  if (cfg.strip !== null) o.stripAccents = cfg.strip;
  const n = t.bertNormalizer(o);
  const blocks = [];
  for (let b = 0; b < 0x110; b++) {
    const h = crypto.createHash('sha256');
    for (let cp = b * 4096; cp < (b + 1) * 4096; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      const text = 'x' + c + 'x ' + c;
      const words = pre.preTokenizeString(n.normalizeString(text)).map(w => w[0]);
      h.update(Buffer.from(text + '\0' + words.join('\x01') + '\n', 'utf8'));
    }
    blocks.push(h.digest('hex').slice(0, 16));
  }
  out.configs.push({cfg, blocks});
}
fs.writeFileSync(process.argv[2], JSON.stringify(out, null, 1) + '\n');
