// tests/parity/test_tokenizer_wordpiece.js — lib/text/wordpiece against
// Hugging Face tokenizers (the Rust library through @anush008/tokenizers).
//
//   node test_tokenizer_wordpiece.js HARNESS SOURCE_ROOT
//
// The oracle is bert-base-uncased's tokenizer.json as tokenizers has it
// (reference/models-and-formats.md §4: BertNormalizer with clean_text,
// handle_chinese_chars, strip_accents null, lowercase; BertPreTokenizer;
// WordPiece [UNK] ## 100; [CLS] $A [SEP]), built from
// tests/data/bert-base-uncased/vocab.txt, plus ImageReward's two added
// special tokens [DEC] (30522) and [ENC] (30523) (THUDM/ImageReward@c1392c6
// ImageReward/models/BLIP/blip.py init_tokenizer). Our ids, loaded (a) from
// vocab.txt with rwd_wordpiece_add_special and (b) from that tokenizer.json,
// are compared on >= 2,000 generated strings untruncated and with
// ImageReward's call (padding="max_length", truncation, max_length=35),
// and on every Unicode scalar value between two letters (the character
// classes). Exit 77 when the oracle is missing.
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
const vfile = path.join(root, 'tests', 'data', 'bert-base-uncased', 'vocab.txt');
if (!fs.existsSync(vfile)) skip(vfile + ' is absent');

const tokJson = require('./bert_tokenize.js').tokenizerJson(vfile);

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
      if (shown++ < 8) {
        const cp = [...strings[i]].slice(0, 8).map((c) => c.codePointAt(0).toString(16)).join(' ');
        console.log(`  MISMATCH ${name} #${i} input=${JSON.stringify(strings[i].slice(0, 120))} (${cp})`);
        console.log(`    hf  =${JSON.stringify(ref[i].slice(0, 40))} (len ${ref[i].length})`);
        console.log(`    ours=${JSON.stringify(Array.isArray(ours[i]) ? ours[i].slice(0, 40) : ours[i])}`);
      }
    }
  }
  console.log(`${name}: ${strings.length} strings, ${ntok} HF tokens, mismatches: ${bad}`);
  return bad;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rwd-wordpiece-'));
  let bad = 0;
  try {
    const file = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(file, JSON.stringify(tokJson));
    const strings = generate(1717, 2400, { specials: ['[CLS]', '[SEP]', '[MASK]', '[DEC]', '[ENC]', '[cls]', '[UNK]', '[PAD]', '[SEP'], nlong: 4 });
    strings.push('Test sentence with [MASK].', 'a photo of a cat', 'A PHOTO   OF\tA\nCAT', 'unaffable',
      'x'.repeat(100), 'x'.repeat(101), 'é'.repeat(101), 'Ⅻ ﬁnance ŉ ǅ İ', '\uF900\uFA0E\u{2F800}');
    const hf = Tokenizer.fromFile(file);
    const full = (await hf.encodeBatch(strings, { addSpecialTokens: true })).map((e) => Array.from(e.getIds()));
    // reference/models-and-formats.md §4.8's golden ids (Bumblebee) hold for the oracle too
    const golden = full[strings.indexOf('Test sentence with [MASK].')];
    if (JSON.stringify(golden) !== JSON.stringify([101, 3231, 6251, 2007, 103, 1012, 102])) {
      console.log('oracle disagrees with the reference golden ids: ' + JSON.stringify(golden));
      bad++;
    }
    hf.setTruncation(35);
    hf.setPadding({ maxLength: 35, padId: 0, padToken: '[PAD]' });
    const t35 = (await hf.encodeBatch(strings, { addSpecialTokens: true })).map((e) => Array.from(e.getIds()));
    const add = ['[DEC]', '[ENC]'];
    const o = runHarness(['wp-vocab', vfile, ...add], strings);
    bad += compare('wordpiece vocab.txt', strings, full, o.lines);
    bad += compare('wordpiece tokenizer.json', strings, full, runHarness(['wp-json', file], strings).lines);
    bad += compare('wordpiece vocab.txt max 35 padded', strings, t35,
      runHarness(['-m', '35', '-p', 'wp-vocab', vfile, ...add], strings).lines);
    let ntrunc = 0;
    for (const ids of full) if (ids.length > 35) ntrunc++;
    console.log(`${ntrunc} strings truncated to 35; our encode of ${strings.length} strings took ${o.ms} ms`);

    // every scalar value between two letters: clean_text, accents, CJK, punctuation classes
    hf.setTruncation(1000);
    hf.setPadding({ maxLength: 1, padId: 0, padToken: '[PAD]' });
    const cps = [];
    for (let c = 0; c < 0x110000; c++) if (c < 0xD800 || c > 0xDFFF) cps.push('a' + String.fromCodePoint(c) + 'b');
    const ref = [];
    for (let i = 0; i < cps.length; i += 65536)
      for (const e of await hf.encodeBatch(cps.slice(i, i + 65536), { addSpecialTokens: false })) ref.push(Array.from(e.getIds()));
    bad += compare('wordpiece every code point', cps, ref, runHarness(['-n', 'wp-vocab', vfile, ...add], cps).lines);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(bad ? `FAIL: ${bad} mismatching strings` : 'PASS: all ids equal');
  process.exit(bad ? 1 : 0);
}

main().catch((e) => { console.log('error: ' + (e && e.stack || e)); process.exit(1); });
