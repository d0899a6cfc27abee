// tests/parity/bert_tokenize.js — ImageReward's tokenizer call as the oracle
// runs it: Hugging Face tokenizers (Rust, via @anush008/tokenizers) with
// bert-base-uncased's tokenizer.json as tokenizers has it, built from a
// vocab.txt, plus the two special tokens ImageReward adds, [DEC] 30522 and
// [ENC] 30523 (THUDM/ImageReward@c1392c6 models/BLIP/blip.py init_tokenizer),
// called as ImageReward.score() does: padding="max_length", truncation=True,
// max_length=35.
//
//   node bert_tokenize.js SOURCE_ROOT VOCAB.txt < strings.json > {"ids": [[..]], "mask": [[..]]}
//
// Also a module: tokenizerJson(vocabFile) for test_tokenizer_wordpiece.js.
// Exit 77 when @anush008/tokenizers is not installed.
'use strict';
const fs = require('fs');
const path = require('path');

function tokenizerJson(vfile) {
  const lines = fs.readFileSync(vfile, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const vocab = {};
  lines.forEach((t, i) => { vocab[t] = i; });
  const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
    normalized: false, special: true });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(0, '[PAD]'), special(100, '[UNK]'), special(101, '[CLS]'), special(102, '[SEP]'),
      special(103, '[MASK]'), special(30522, '[DEC]'), special(30523, '[ENC]')],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [101], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [102], tokens: ['[SEP]'] } } },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

module.exports = { tokenizerJson };

if (require.main === module) {
  const [root, vfile] = process.argv.slice(2);
  let Tokenizer;
  try {
    ({ Tokenizer } = require(path.join(root, 'node_modules', '@anush008', 'tokenizers')));
  } catch (e) { console.log('SKIP: @anush008/tokenizers not installed'); process.exit(77); }
  const strings = JSON.parse(fs.readFileSync(0, 'utf8'));
  const hf = Tokenizer.fromString(JSON.stringify(tokenizerJson(vfile)));
  hf.setTruncation(35);
  hf.setPadding({ maxLength: 35, padId: 0, padToken: '[PAD]' });
  hf.encodeBatch(strings, { addSpecialTokens: true }).then((encs) => {
    process.stdout.write(JSON.stringify({ ids: encs.map((e) => Array.from(e.getIds())),
      mask: encs.map((e) => Array.from(e.getAttentionMask())) }));
  }).catch((e) => { console.error(e); process.exit(1); });
}
