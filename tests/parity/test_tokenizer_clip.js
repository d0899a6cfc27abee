// tests/parity/test_tokenizer_clip.js — lib/text's CLIP BPE against Hugging
// Face tokenizers (the Rust library through @anush008/tokenizers).
//
//   node test_tokenizer_clip.js HARNESS SOURCE_ROOT
//
// Builds the CLIP tokenizer.json as transformers' CLIPTokenizerFast has it
// (reference/models-and-formats.md §4.6) from ../shared/fixtures/clip-bpe/
// bpe_simple_vocab_16e6.txt.gz: vocab = 256 byte chars in bytes_to_unicode
// order, the same with </w>, merges 1..48894 joined, <|startoftext|>,
// <|endoftext|>; NFC + Replace(\s+ -> " ") + Lowercase; Split(CLIP regex,
// Removed, invert) + ByteLevel; BPE with end_of_word_suffix </w>;
// RobertaProcessing(bos 49406, eos 49407). Then compares our ids, loaded
// (a) from that tokenizer.json, (b) from vocab.json + merges.txt, (c) from
// the .gz directly, with the Rust library's on >= 2,000 strings, untruncated
// and truncated to 77 (eos kept). Exit 77 when an input is missing.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const { spawnSync } = require('child_process');
const { generate } = require('./tokenizer_strings.js');

const [harness, root] = process.argv.slice(2);
function skip(why) { console.log('SKIP: ' + why); process.exit(77); }

let Tokenizer;
try {
  ({ Tokenizer } = require(path.join(root, 'node_modules', '@anush008', 'tokenizers')));
} catch (e) { skip('@anush008/tokenizers not installed in node_modules (' + e.message.split('\n')[0] + ')'); }
const gz = process.env.RWD_FIXTURES ? path.join(process.env.RWD_FIXTURES, 'clip-bpe', 'bpe_simple_vocab_16e6.txt.gz')
  : path.join(root, '..', 'shared', 'fixtures', 'clip-bpe', 'bpe_simple_vocab_16e6.txt.gz');
if (!fs.existsSync(gz)) skip('fixture ' + gz + ' is absent');

function bytesToUnicode() {
  const bs = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  return cs.map((c) => String.fromCodePoint(c)); // in bs order
}

const lines = zlib.gunzipSync(fs.readFileSync(gz)).toString('utf8').split('\n');
const merges = lines.slice(1, 49152 - 256 - 2 + 1).map((l) => l.split(' '));
const chars = bytesToUnicode();
const vocabList = chars.concat(chars.map((c) => c + '</w>'), merges.map((m) => m.join('')),
  ['<|startoftext|>', '<|endoftext|>']);
const vocab = {};
vocabList.forEach((t, i) => { vocab[t] = i; });

const CLIP_RX = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
const tokJson = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: [
    { id: 49406, content: '<|startoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    { id: 49407, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
  normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' },
    { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
  pre_tokenizer: { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: CLIP_RX }, behavior: 'Removed', invert: true },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
  post_processor: { type: 'RobertaProcessing', sep: ['<|endoftext|>', 49407], cls: ['<|startoftext|>', 49406],
    trim_offsets: false, add_prefix_space: false },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', dropout: null, unk_token: '<|endoftext|>', continuing_subword_prefix: '',
    end_of_word_suffix: '</w>', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
};

function runHarness(args, strings) {
  const input = strings.map((s) => JSON.stringify(s)).join('\n') + '\n';
  const t0 = Date.now();
  const r = spawnSync(harness, args, { input, maxBuffer: 1 << 30 });
  if (r.status !== 0) {
    console.log('harness failed (' + r.status + '): ' + r.stderr.toString());
    process.exit(1);
  }
  return { lines: r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l)), ms: Date.now() - t0 };
}

function compare(name, strings, ref, ours) {
  let bad = 0, shown = 0, ntok = 0;
  for (let i = 0; i < strings.length; i++) {
    ntok += ref[i].length;
    if (JSON.stringify(ref[i]) !== JSON.stringify(ours[i])) {
      bad++;
      if (shown++ < 5) {
        console.log(`  MISMATCH ${name} #${i} input=${JSON.stringify(strings[i].slice(0, 200))}`);
        console.log(`    hf  =${JSON.stringify(ref[i].slice(0, 40))} (len ${ref[i].length})`);
        console.log(`    ours=${JSON.stringify(Array.isArray(ours[i]) ? ours[i].slice(0, 40) : ours[i])}`);
      }
    }
  }
  console.log(`${name}: ${strings.length} strings, ${ntok} HF tokens, mismatches: ${bad}`);
  return bad;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rwd-clip-'));
  let bad = 0;
  try {
    const file = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(file, JSON.stringify(tokJson));
    const vfile = path.join(dir, 'vocab.json'), mfile = path.join(dir, 'merges.txt');
    fs.writeFileSync(vfile, JSON.stringify(vocab));
    fs.writeFileSync(mfile, '#version: 0.2\n' + merges.map((m) => m.join(' ')).join('\n') + '\n');

    const strings = generate(4242, 2400, { specials: ['<|startoftext|>', '<|endoftext|>', '<|ENDOFTEXT|>', '<|endoftext|'], nlong: 4 });
    strings.push('a photo of a cat', 'A PHOTO   OF\tA\nCAT', 'a photo of a dog');
    const hf = Tokenizer.fromFile(file);
    const full = (await hf.encodeBatch(strings, { addSpecialTokens: true })).map((e) => Array.from(e.getIds()));
    hf.setTruncation(77);
    const t77 = (await hf.encodeBatch(strings, { addSpecialTokens: true })).map((e) => Array.from(e.getIds()));

    // the fixture README's known ids (openai/CLIP) hold for the oracle too
    const cat = full[strings.indexOf('a photo of a cat')];
    if (JSON.stringify(cat) !== JSON.stringify([49406, 320, 1125, 539, 320, 2368, 49407])) {
      console.log('oracle disagrees with the fixture README for "a photo of a cat": ' + JSON.stringify(cat));
      bad++;
    }
    let ntrunc = 0;
    for (const ids of t77) if (ids.length === 77) ntrunc++;

    bad += compare('clip tokenizer.json', strings, full, runHarness(['json', file], strings).lines);
    bad += compare('clip tokenizer.json max 77', strings, t77, runHarness(['-m', '77', 'json', file], strings).lines);
    bad += compare('clip vocab+merges max 77', strings, t77,
      runHarness(['-m', '77', 'vocab', vfile, mfile, 'clip'], strings).lines);
    const o = runHarness(['-m', '77', 'gz', gz], strings);
    bad += compare('clip .gz max 77', strings, t77, o.lines);
    console.log(`${ntrunc} strings truncated to 77 (every one ends with eos 49407: ${t77.every((x) => x[x.length - 1] === 49407)})`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(bad ? `FAIL: ${bad} mismatching strings` : 'PASS: all ids equal');
  process.exit(bad ? 1 : 0);
}

main().catch((e) => { console.log('error: ' + (e && e.stack || e)); process.exit(1); });
