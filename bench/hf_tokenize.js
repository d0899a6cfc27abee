// bench/hf_tokenize.js — the tokenizer of bench/get_reward_peer.py: Hugging
// Face tokenizers (the Rust library through @anush008/tokenizers), as a
// Python reward server would call it, kept running as a sidecar.
//
//   node hf_tokenize.js SOURCE_ROOT TOKENIZER_JSON
//
// Reads one JSON array of strings per stdin line and writes one JSON array of
// id arrays per stdout line (encodeBatch, add_special_tokens=False as
// OpenRLHF's serve_rm).
'use strict';
const path = require('path');
const readline = require('readline');

const [root, file] = process.argv.slice(2);
const { Tokenizer } = require(path.join(root, 'node_modules', '@anush008', 'tokenizers'));
const tok = Tokenizer.fromFile(file);

// Lines are answered in order: each waits for the previous encodeBatch.
let chain = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const strings = JSON.parse(line);
  chain = chain.then(() => tok.encodeBatch(strings, { addSpecialTokens: false })).then((enc) => {
    process.stdout.write(JSON.stringify(enc.map((e) => Array.from(e.getIds()))) + '\n');
  });
});
