// The reference encoder for tests/text/oracle_test.cpp: @lenml/tokenizers (a port of
// transformers.js), pinned in package.json. Prints one JSON line per input:
//   {"file": PATH, "line": N (with --lines), "ids": [...], "decoded": TEXT|null, "decoded_skip": TEXT|null}
// ids = encode(text) with the library's defaults (add_special_tokens: true); decoded =
// decode(ids) with its defaults, decoded_skip = decode(ids, {skip_special_tokens: true}) (null
// when ids is empty: the reference refuses to decode []).
// Usage: node encode.mjs TOKENIZER [--lines] FILE...
//   TOKENIZER: qwen3 | deepseek_v3 | llama2 (the @lenml/tokenizer-NAME package's models/), or a
//   directory holding tokenizer.json (and optionally tokenizer_config.json).
//   --lines: encode each line of each file (split on "\n", a "\r" stays) instead of whole files.
import fs from "node:fs";
import { loadTokenizer } from "./load.mjs";

const args = process.argv.slice(2);
const name = args.shift();
const lines = args[0] === "--lines" && args.shift() !== undefined;
if (!name || args.length === 0) {
  console.error("usage: node encode.mjs TOKENIZER [--lines] FILE...");
  process.exit(2);
}
const tokenizer = loadTokenizer(name);

const out = [];
const emit = (record) => {
  out.push(JSON.stringify(record));
  if (out.length >= 64) fs.writeSync(1, out.splice(0).join("\n") + "\n");
};
for (const file of args) {
  const text = fs.readFileSync(file, "utf8");
  const pieces = lines ? text.split("\n") : [text];
  pieces.forEach((piece, i) => {
    const ids = tokenizer.encode(piece);
    const decoded = ids.length ? tokenizer.decode(ids) : null;
    const decoded_skip = ids.length ? tokenizer.decode(ids, { skip_special_tokens: true }) : null;
    const record = { file, ids, decoded, decoded_skip };
    emit(lines ? { file, line: i + 1, ...record } : record);
  });
}
if (out.length) fs.writeSync(1, out.join("\n") + "\n");
