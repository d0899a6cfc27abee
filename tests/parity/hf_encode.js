// tests/parity/hf_encode.js — token ids of strings by Hugging Face tokenizers
// (the Rust library through @anush008/tokenizers), the independent oracle of
// test_vlm_kind.py.
//
//   node hf_encode.js SOURCE_ROOT TOKENIZER_JSON STRINGS_JSON
//
// STRINGS_JSON: a JSON array of strings. stdout: a JSON array of id arrays
// (add_special_tokens false, as the Qwen2-VL processor's text is already
// templated). Exit 77 when the library is not installed.
'use strict';
const fs = require('fs');
const path = require('path');

const [root, tokFile, strFile] = process.argv.slice(2);
let Tokenizer;
try {
  ({ Tokenizer } = require(path.join(root, 'node_modules', '@anush008', 'tokenizers')));
} catch (e) {
  console.log('SKIP: @anush008/tokenizers not installed in node_modules (' + e.message.split('\n')[0] + ')');
  process.exit(77);
}

(async () => {
  const hf = Tokenizer.fromFile(tokFile);
  const strings = JSON.parse(fs.readFileSync(strFile, 'utf8'));
  const enc = await hf.encodeBatch(strings, { addSpecialTokens: false });
  process.stdout.write(JSON.stringify(enc.map((e) => Array.from(e.getIds()))));
})().catch((e) => { console.error(e); process.exit(1); });
