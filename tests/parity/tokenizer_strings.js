// tests/parity/tokenizer_strings.js — deterministic varied test strings for
// the tokenizer parity tests (chat markup, code, Unicode, emoji with ZWJ,
// CJK, Arabic/Hindi, digit runs, whitespace runs, contractions, punctuation
// runs, long inputs). Seeded, so a failure reproduces.
'use strict';

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['Hello', 'world', 'the', 'The', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog',
  'reward', 'model', 'tokenizer', 'Qwen', 'LLaMA', 'café', 'naïve', 'résumé', 'Zürich', 'Straße',
  'İstanbul', 'ΣΊΣΥΦΟΣ', 'Ελληνικά', 'Москва', 'привет', 'ﬁnance', 'Ⅻ', '½', '²³', 'x86_64',
  'GPU', 'HTTP/1.1', 'e-mail', 'O\'Neil', 'rock\'n\'roll', 'A.I.', 'U.S.A.', 'iPhone', 'snake_case',
  'camelCase', 'CONSTANT_VALUE', 'https://example.com/a?b=c&d=e#f', 'user@example.org'];
const UNI = ['你好', '世界', '中文分词', '東京都', 'ひらがな', 'カタカナ', '한국어', '안녕하세요',
  'مرحبا', 'العربية', 'नमस्ते', 'हिन्दी', 'ภาษาไทย', 'עברית', 'Tiếng Việt', 'ქართული',
  'e\u0301', 'a\u0308', 'o\u0302\u0323', '\u1100\u1161\u11A8', 'A\u030A', 'ñ', 'Å', '\u212B',
  '😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇺🇸🇯🇵', '❤️', '✨', '🤖', '🧑🏾‍💻', '👩‍❤️‍💋‍👨', '∑∫√∞',
  '€£¥', '©®™', '→⇒↔', '…', '“quoted”', '‘single’', '«guillemets»', '—', '–', '·', '\u00AD',
  '\u200B', '\u200D', '\uFEFF', 'ｆｕｌｌｗｉｄｔｈ', '１２３', '①②③', '٣٤٥', '१२३', '〇'];
const CONTR = ["don't", "I'm", "we're", "they've", "she'll", "he'd", "it's", "DON'T", "I'M", "You'RE",
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "''", "'", "rock 's", "x'S", "o'clock"];
const PUNCT = ['!!!', '???', '...', '---', '<<<>>>', '$$$', '@#%^&*', '()[]{}', ';;', '::', '/*', '*/',
  '==>', '!=', '->', '=>', '##', '""', '\\\\', '|', '~`', ',', '.', '?!', '%', '+-'];
const WS = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '\r\n\r\n', ' \n', '\t\t', '\u00A0', '\u3000',
  '\u2003', '\u0085', ' \t \n ', '\n   ', '    ', '\u000B', '\f'];
const CODE = [
  'def f(x):\n    return x * 2\n',
  'for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n',
  'const x = {"a": 1, "b": [1, 2, 3]};',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); }',
  'SELECT * FROM users WHERE id = 12345;',
  '<div class="x">Hello&nbsp;world</div>',
  'if __name__ == "__main__":\n\tmain()\n',
  '  x = [i**2 for i in range(10)]  # squares',
  'fn main() -> Result<(), Box<dyn Error>> { Ok(()) }',
  '$ ls -la /tmp | grep foo > out.txt 2>&1',
];
const SPECIAL = ['<|im_start|>', '<|im_end|>', '<|endoftext|>'];

function pick(r, a) { return a[Math.floor(r() * a.length)]; }

function digits(r) {
  const n = 1 + Math.floor(r() * 25);
  let s = '';
  for (let i = 0; i < n; i++) s += String(Math.floor(r() * 10));
  const k = r();
  if (k < 0.2) return s + '.' + String(Math.floor(r() * 1000));
  if (k < 0.3) return '1,000,' + s;
  return s;
}

// random code point from well-established blocks (no unassigned, no surrogates)
const RANGES = [[0x20, 0x7E], [0xA0, 0x17F], [0x370, 0x3FF], [0x400, 0x4FF], [0x590, 0x5FF],
  [0x600, 0x6FF], [0x900, 0x97F], [0xE00, 0xE5B], [0x3040, 0x30FF], [0x4E00, 0x9FFF],
  [0xAC00, 0xD7A3], [0x2000, 0x206F], [0x2190, 0x22FF], [0x1F600, 0x1F64F], [0x1F300, 0x1F5FF],
  [0x300, 0x36F], [0xFF01, 0xFF5E], [0x0, 0x1F]];
function randcp(r) {
  const [a, b] = pick(r, RANGES);
  return String.fromCodePoint(a + Math.floor(r() * (b - a + 1)));
}

function fragment(r, specials) {
  const k = r();
  if (k < 0.25) return pick(r, WORDS);
  if (k < 0.40) return pick(r, UNI);
  if (k < 0.48) return pick(r, CONTR);
  if (k < 0.56) return pick(r, PUNCT);
  if (k < 0.66) return digits(r);
  if (k < 0.72) return pick(r, CODE);
  if (k < 0.80) { let s = ''; const n = 1 + Math.floor(r() * 6); for (let i = 0; i < n; i++) s += randcp(r); return s; }
  if (k < 0.86 && specials.length) return pick(r, specials);
  return pick(r, WS);
}

function sentence(r, specials, maxFrag) {
  const n = 1 + Math.floor(r() * maxFrag);
  let s = '';
  for (let i = 0; i < n; i++) {
    s += fragment(r, specials);
    const k = r();
    if (k < 0.55) s += ' ';
    else if (k < 0.65) s += pick(r, WS);
  }
  if (r() < 0.1) s += pick(r, ['  ', ' ', '\n', '\t', ' \n']);
  if (r() < 0.05) s = pick(r, ['  ', ' ', '\n']) + s;
  return s;
}

function chat(r, roles) {
  let s = '';
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++)
    s += '<|im_start|>' + pick(r, roles) + '\n' + sentence(r, [], 12) + '<|im_end|>\n';
  return s;
}

// `count` strings: fixed edge cases, chat markup, mixtures, and `nlong` long inputs.
function generate(seed, count, opts) {
  const r = rng(seed);
  const specials = (opts && opts.specials) || SPECIAL;
  const out = ['', ' ', '  ', '\n', '\r\n', 'a', 'Hello world', 'Hello, World! 12345', "I'm here.\n\nOK",
    '你好，世界', 'a photo of a cat', '   leading', 'trailing   ', 'tabs\t\tand\nnewlines\r\n',
    '12345678901234567890', "it's", "IT'S", '...', '👨‍👩‍👧‍👦', 'e\u0301', '\u0000x', 'x\u0000'];
  if (specials.length) out.push(specials.join(''), specials.join(' '), ' ' + specials[0] + ' x ' + specials[0] + ' ');
  const nlong = (opts && opts.nlong) || 8;
  for (let i = 0; i < nlong; i++) {
    let s = '';
    while (s.length < 10000 + i * 1500) s += sentence(r, specials, 20) + pick(r, WS);
    out.push(s);
  }
  while (out.length < count) {
    const k = r();
    if (k < 0.15 && specials.length) out.push(chat(r, ['system', 'user', 'assistant']));
    else if (k < 0.25) out.push(pick(r, CODE) + sentence(r, specials, 4));
    else out.push(sentence(r, specials, 16));
  }
  return out;
}

module.exports = { generate };
