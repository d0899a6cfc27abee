// tests/parity/test_tokenizer_qwen2.js — lib/text byte-level BPE against
// Hugging Face tokenizers (the Rust library through @anush008/tokenizers).
//
//   node test_tokenizer_qwen2.js HARNESS SOURCE_ROOT
//
// Writes two tokenizer.json files built from ../shared/fixtures/qwen2-tokenizer:
//   qwen2:  the Qwen2 structure of reference/models-and-formats.md §4.7
//           (NFC; Split(Qwen2 regex, Isolated) + ByteLevel(no prefix, no
//           regex); BPE with [a, b] merges; <|endoftext|>/<|im_start|>/
//           <|im_end|>; ByteLevel post-processor and decoder);
//   llama3: the Llama-3 structure on the same vocabulary (no normalizer,
//           Llama-3 regex, ignore_merges, legacy "a b" merges,
//           Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)],
//           plus lstrip/rstrip/single_word and normalized added tokens);
// encodes 5,200 generated strings (qwen2; 3,000 for llama3, to keep the ASan
// run under a minute) with both libraries and requires equal
// ids. Also checks our vocab.json + merges.txt loader (qwen2 preset) against
// the Rust library on the same strings. Exit 77 (skip) when node_modules or
// the fixture is missing.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { generate } = require('./tokenizer_strings.js');

const [harness, root] = process.argv.slice(2);
function skip(why) { console.log('SKIP: ' + why); process.exit(77); }

let Tokenizer;
try {
  ({ Tokenizer } = require(path.join(root, 'node_modules', '@anush008', 'tokenizers')));
} catch (e) { skip('@anush008/tokenizers not installed in node_modules (' + e.message.split('\n')[0] + ')'); }
const fixdir = process.env.RWD_FIXTURES ? path.join(process.env.RWD_FIXTURES, 'qwen2-tokenizer')
  : path.join(root, '..', 'shared', 'fixtures', 'qwen2-tokenizer');
if (!fs.existsSync(path.join(fixdir, 'vocab.json'))) skip('fixture ' + fixdir + ' is absent');

const vocab = JSON.parse(fs.readFileSync(path.join(fixdir, 'vocab.json'), 'utf8'));
const mergeLines = fs.readFileSync(path.join(fixdir, 'merges.txt'), 'utf8').split(/\r?\n/)
  .filter((l) => l.length && !l.startsWith('#version'));

const QWEN2_RX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_RX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function added(id, content, o) {
  o = o || {};
  return { id, content, single_word: !!o.single_word, lstrip: !!o.lstrip, rstrip: !!o.rstrip,
    normalized: !!o.normalized, special: o.special !== false };
}

function qwen2Json() {
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(151643, '<|endoftext|>'), added(151644, '<|im_start|>'), added(151645, '<|im_end|>')],
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: QWEN2_RX }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab,
      merges: mergeLines.map((l) => l.split(' ')) },
  };
}

function llama3Json() {
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [
      added(151643, '<|begin_of_text|>'), added(151644, '<|start_header_id|>'),
      added(151645, '<|end_header_id|>'), added(151646, '<|eot_id|>'),
      added(151647, '<mask>', { lstrip: true, rstrip: true, single_word: true }),
      added(151648, 'reward model', { normalized: true, special: false }),
      added(151649, '<|eot|>'), // a prefix of <|eot_id|>: leftmost-longest must pick the longer
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: LLAMA3_RX }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      { type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [151643], tokens: ['<|begin_of_text|>'] } } }] },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges: mergeLines },
  };
}

function runHarness(args, strings) {
  const input = strings.map((s) => JSON.stringify(s)).join('\n') + '\n';
  const t0 = Date.now();
  const r = spawnSync(harness, args, { input, maxBuffer: 1 << 30 });
  if (r.status !== 0) {
    console.log('harness failed (' + r.status + '): ' + r.stderr.toString());
    process.exit(1);
  }
  const lines = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
  return { lines, ms: Date.now() - t0 };
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function compare(name, strings, ref, ours) {
  let bad = 0, shown = 0, ntok = 0;
  for (let i = 0; i < strings.length; i++) {
    const a = ref[i], b = ours[i];
    ntok += a.length;
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      bad++;
      if (shown++ < 5) {
        const d = Array.isArray(b) ? firstDiff(a, b) : 0;
        console.log(`  MISMATCH ${name} #${i} input=${JSON.stringify(strings[i].slice(0, 200))}`);
        console.log(`    hf  [${d}..]=${JSON.stringify(a.slice(d, d + 12))} (len ${a.length})`);
        console.log(`    ours[${d}..]=${JSON.stringify(Array.isArray(b) ? b.slice(d, d + 12) : b)} (len ${Array.isArray(b) ? b.length : '-'})`);
      }
    }
  }
  console.log(`${name}: ${strings.length} strings, ${ntok} HF tokens, mismatches: ${bad}`);
  return bad;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rwd-tok-'));
  let bad = 0;
  try {
    const cases = [
      { name: 'qwen2', json: qwen2Json(), strings: generate(20240601, 5200) },
      { name: 'llama3', json: llama3Json(),
        strings: generate(777, 3000, { specials: ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>',
          '<|eot_id|>', '<|eot|>', '<mask>', ' <mask> ', 'a<mask>b', 'reward model', 'Reward model', '<|im_start|>'] }) },
    ];
    for (const c of cases) {
      const file = path.join(dir, c.name + '.json');
      fs.writeFileSync(file, JSON.stringify(c.json));
      const hf = Tokenizer.fromFile(file);
      const t0 = Date.now();
      const enc = await hf.encodeBatch(c.strings, { addSpecialTokens: true });
      const ref = enc.map((e) => Array.from(e.getIds()));
      const hfMs = Date.now() - t0;
      const ours = runHarness(['json', file], c.strings);
      console.log(`${c.name}: HF ${hfMs} ms (batch, threaded), ours ${ours.ms} ms (incl. load)`);
      bad += compare(c.name + ' tokenizer.json', c.strings, ref, ours.lines);
      if (c.name === 'qwen2') {
        // vocab.json + merges.txt + added_tokens.json through the qwen2 preset
        const at = path.join(dir, 'added_tokens.json');
        fs.writeFileSync(at, JSON.stringify({ '<|endoftext|>': 151643, '<|im_start|>': 151644, '<|im_end|>': 151645 }));
        const some = c.strings.slice(0, 2600); // the loader, not the encoder, is under test here
        const o2 = runHarness(['vocab', path.join(fixdir, 'vocab.json'), path.join(fixdir, 'merges.txt'), 'qwen2', at], some);
        bad += compare('qwen2 vocab+merges', some, ref.slice(0, some.length), o2.lines);
        // no special tokens requested: ByteLevel post-processor adds none either way
        const plain = c.strings.slice(0, 300);
        const encn = await hf.encodeBatch(plain, { addSpecialTokens: false });
        bad += compare('qwen2 no-special', plain, encn.map((e) => Array.from(e.getIds())),
          runHarness(['-n', 'json', file], plain).lines);
      } else {
        const plain = c.strings.slice(0, 300);
        const encn = await hf.encodeBatch(plain, { addSpecialTokens: false });
        bad += compare('llama3 no-special', plain, encn.map((e) => Array.from(e.getIds())),
          runHarness(['-n', 'json', file], plain).lines);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(bad ? `FAIL: ${bad} mismatching strings` : 'PASS: all ids equal');
  process.exit(bad ? 1 : 0);
}

main().catch((e) => { console.log('error: ' + (e && e.stack || e)); process.exit(1); });
