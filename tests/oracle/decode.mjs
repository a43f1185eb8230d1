// The reference decoder for tests/cli/tokenizer_model.sh: @lenml/tokenizers (as encode.mjs).
// Prints one JSON line {"text": decode(ids, {skip_special_tokens: true})} for the ids in a JSON file.
// Usage: node decode.mjs TOKENIZER IDS.json
//   TOKENIZER: qwen3 | deepseek_v3 | llama2, or a directory holding tokenizer.json.
import fs from "node:fs";
import { loadTokenizer } from "./load.mjs";

const [name, idsFile] = process.argv.slice(2);
if (!name || !idsFile) {
  console.error("usage: node decode.mjs TOKENIZER IDS.json");
  process.exit(2);
}
const tokenizer = loadTokenizer(name);
const ids = JSON.parse(fs.readFileSync(idsFile, "utf8"));
console.log(JSON.stringify({ text: ids.length ? tokenizer.decode(ids, { skip_special_tokens: true }) : "" }));
