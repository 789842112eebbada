// reads JSON array of strings on stdin, prints JSON array of id arrays
const { Tokenizer } = require('tokenizers');
const fs = require('fs');
const tok = Tokenizer.fromFile(process.argv[2]);
tok.setTruncation(512);
const texts = JSON.parse(fs.readFileSync(0, 'utf8'));
(async () => {
  const out = [];
  for (const t of texts) {
    const enc = await tok.encode(t);
    out.push(enc.getIds());
  }
  process.stdout.write(JSON.stringify(out));
})();
