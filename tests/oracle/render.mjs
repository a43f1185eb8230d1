// The reference chat-template renderer for tests/cli/chat_template_oracle.sh: @huggingface/jinja
// (pinned in package.json), called as transformers.js's apply_chat_template(conversation,
// {tokenize: false, ...}) calls it (the same steps as @lenml/tokenizers 3.7.2's
// PreTrainedTokenizer.get_chat_template / apply_chat_template, without needing a tokenizer.json):
//   - chat_template: tokenizer_config.json's string, or of its list of {name, template} the one
//     named "tool_use" when tools are given and it exists, else "default";
//   - variables: messages, add_generation_prompt, tools, documents, then each of bos_token,
//     eos_token, unk_token, sep_token, pad_token, cls_token, mask_token that is set (a string or
//     an AddedToken's content), then the conversation file's other keys (e.g. enable_thinking);
//   - Template renders with trim_blocks and lstrip_blocks (the package always does).
// Prints the rendered text with nothing added; an error goes to stderr with exit status 1.
// Usage: node render.mjs CONFIG MESSAGES.json [--no-generation-prompt]
//   CONFIG: a tokenizer_config.json, or a directory holding one.
//   MESSAGES.json: a list of messages, or an object {"messages": [...], "tools": [...], ...}
//   (the format of `moe chat --render`).
import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";

const args = process.argv.slice(2);
const noPrompt = args.includes("--no-generation-prompt");
const [configArg, messagesFile] = args.filter((a) => a !== "--no-generation-prompt");
if (!configArg || !messagesFile) {
  console.error("usage: node render.mjs CONFIG MESSAGES.json [--no-generation-prompt]");
  process.exit(2);
}
const readJson = (f) => JSON.parse(fs.readFileSync(f, "utf8"));

try {
  const configFile = fs.statSync(configArg).isDirectory() ? path.join(configArg, "tokenizer_config.json") : configArg;
  const config = readJson(configFile);
  const input = readJson(messagesFile);
  const { messages, tools = null, documents = null, ...kwargs } = Array.isArray(input) ? { messages: input } : input;

  let template = config.chat_template ?? null;
  if (Array.isArray(template)) {
    const byName = Object.create(null);
    for (const { name, template: text } of template) byName[name] = text;
    if (tools !== null && "tool_use" in byName) template = byName.tool_use;
    else if ("default" in byName) template = byName.default;
    else throw new Error("multiple chat templates and none named 'default'");
  }
  if (typeof template !== "string") throw new Error("no chat_template");

  const special = Object.create(null);
  for (const key of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
    const item = config[key];
    if (!item) continue;
    if (typeof item === "object") {
      if (item.__type !== "AddedToken") throw new Error(`Unknown token: ${item}`);
      if (item.content) special[key] = item.content;
    } else {
      special[key] = item;
    }
  }
  const rendered = new Template(template).render({
    messages,
    add_generation_prompt: !noPrompt,
    tools,
    documents,
    ...special,
    ...kwargs,
  });
  fs.writeSync(1, rendered);
} catch (e) {
  console.error(`render.mjs: ${e.message}`);
  process.exit(1);
}
