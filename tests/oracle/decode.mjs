// The reference decoder for tests/cli/tokenizer_model.sh: @lenml/tokenizers (as encode.mjs).
// Prints one JSON line {"text": decode(ids, {skip_special_tokens: true})} for the ids in a JSON file.
// Usage: node decode.mjs TOKENIZER IDS.json
//   TOKENIZER: qwen3 | deepseek_v3 | llama2, or a directory holding tokenizer.json.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { TokenizerLoader } from "@lenml/tokenizers";

const require = createRequire(import.meta.url);
const [name, idsFile] = process.argv.slice(2);
if (!name || !idsFile) {
  console.error("usage: node decode.mjs TOKENIZER IDS.json");
  process.exit(2);
}
const dir = fs.existsSync(path.join(name, "tokenizer.json"))
  ? name
  : path.dirname(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`));
const readJson = (f) => JSON.parse(fs.readFileSync(f, "utf8"));
const configPath = path.join(dir, "tokenizer_config.json");
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: readJson(path.join(dir, "tokenizer.json")),
  tokenizerConfig: fs.existsSync(configPath) ? readJson(configPath) : {},
});
const ids = readJson(idsFile);
console.log(JSON.stringify({ text: ids.length ? tokenizer.decode(ids, { skip_special_tokens: true }) : "" }));
