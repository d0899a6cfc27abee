/*
 * text/tokenizer.h — Hugging Face byte-level / CLIP BPE tokenizers in C.
 *
 * An rwd_tokenizer is loaded once from one of
 *   - a Hugging Face tokenizer.json (the `tokenizers` library's format),
 *   - a vocab.json + merges.txt pair (GPT-2 / Qwen2 / Llama-3 style) plus a
 *     preset naming the pipeline around the BPE model,
 *   - CLIP's bpe_simple_vocab_16e6.txt.gz (the vocabulary is rebuilt from
 *     the merges as openai/CLIP and transformers' CLIPConverter do),
 * and is immutable afterwards: any number of threads may encode with it at
 * once. Encoding allocates only from the caller's arena (no malloc per
 * token, no shared cache).
 *
 * The pipeline is the one of HF `tokenizers` (ids equal its ids; the parity
 * tests run the Rust library through node):
 *   1. added tokens with normalized=false are split out of the raw text
 *      (leftmost-longest; single_word / lstrip / rstrip as HF defines them);
 *   2. every other piece is normalised (NFC/NFD/NFKC/NFKD through utf8proc,
 *      Lowercase, Replace, Strip, Prepend, Sequence), then added tokens with
 *      normalized=true are split out of the normalised text;
 *   3. pre-tokenisation (Split with a PCRE2 UTF+UCP regex and any
 *      behaviour, ByteLevel with the GPT-2 byte map, Whitespace,
 *      WhitespaceSplit, Sequence);
 *   4. BPE: merges by rank (lowest first, leftmost on ties), both merge
 *      encodings, ignore_merges, continuing_subword_prefix,
 *      end_of_word_suffix, unk_token + fuse_unk, byte_fallback;
 *   5. the post-processor's special tokens (TemplateProcessing,
 *      RobertaProcessing, BertProcessing, ByteLevel, Sequence), single
 *      sequences only, and optional truncation that keeps them.
 * Not supported (RWD_E_UNSUPPORTED at load): WordPiece/Unigram/WordLevel
 * models, BPE dropout, other normalizers and pre-tokenizers.
 */
#ifndef RWD_TEXT_TOKENIZER_H
#define RWD_TEXT_TOKENIZER_H

#include "core/arena.h"
#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rwd_tokenizer rwd_tokenizer;

/* Limits on every size read from tokenizer files (all untrusted). */
typedef struct rwd_tokenizer_params {
	size_t max_file_bytes;    /* a tokenizer.json / vocab.json / merges file (64 MiB) */
	size_t max_vocab;         /* vocabulary entries (1 Mi) */
	size_t max_merges;        /* merge rules (1 Mi) */
	size_t max_token_bytes;   /* bytes of one token string (1024) */
	size_t max_added_tokens;  /* added_tokens entries (65536) */
	size_t max_pattern_bytes; /* a regex pattern or replacement (4096) */
	size_t max_steps;         /* normalizer / pre-tokenizer / processor steps (32) */
	int32_t max_id;           /* largest token id accepted (1<<24) */
} rwd_tokenizer_params;

rwd_tokenizer_params rwd_tokenizer_default_params(void);

/* The pipeline around a BPE model loaded from vocab/merges files. */
typedef enum rwd_tokenizer_preset {
	/* Qwen2/Qwen2.5/Qwen3: NFC, Split(Qwen2 regex, Isolated) + ByteLevel,
	 * no BOS/EOS (reference §4.7). */
	RWD_TOKENIZER_QWEN2 = 1,
	/* Llama-3: no normalizer, Split(Llama-3 regex) + ByteLevel,
	 * ignore_merges, `<|begin_of_text|>` prepended when that token exists. */
	RWD_TOKENIZER_LLAMA3,
	/* GPT-2: ByteLevel(use_regex) only. */
	RWD_TOKENIZER_GPT2,
	/* CLIP: NFC + Replace(\s+ -> " ") + Lowercase, Split(CLIP regex,
	 * Removed, invert) + ByteLevel, `</w>` suffix, unk `<|endoftext|>`,
	 * `<|startoftext|> A <|endoftext|>` (reference §4.6). */
	RWD_TOKENIZER_CLIP,
} rwd_tokenizer_preset;

/*
 * Load a tokenizer.json file. On failure returns a negative RWD_E_* code,
 * *out stays NULL, and err names the file, the JSON path of the offending
 * value (e.g. `model.merges[17]`) and, for syntax errors, line/column.
 */
int rwd_tokenizer_load_json(const char *path, const rwd_tokenizer_params *params,
	rwd_tokenizer **out, rwd_error *err) RWD_WARN_UNUSED;

/* The same from bytes in memory (`name` is used in error messages). */
int rwd_tokenizer_load_json_bytes(const char *data, size_t len, const char *name,
	const rwd_tokenizer_params *params, rwd_tokenizer **out, rwd_error *err) RWD_WARN_UNUSED;

/*
 * Load vocab.json + merges.txt and wrap them in `preset`'s pipeline.
 * `added_tokens_path` (may be NULL) is an added_tokens.json object
 * {"<|im_start|>": 151644, ...}; its tokens are special and match the raw
 * text. For RWD_TOKENIZER_CLIP the two specials come from vocab.json.
 */
int rwd_tokenizer_load_vocab_merges(const char *vocab_path, const char *merges_path,
	const char *added_tokens_path, rwd_tokenizer_preset preset,
	const rwd_tokenizer_params *params, rwd_tokenizer **out, rwd_error *err) RWD_WARN_UNUSED;

/* Load CLIP's bpe_simple_vocab_16e6.txt.gz (gzip, read through zlib). */
int rwd_tokenizer_load_clip_bpe_gz(const char *path, const rwd_tokenizer_params *params,
	rwd_tokenizer **out, rwd_error *err) RWD_WARN_UNUSED;

/*
 * Load whatever a Hugging Face model folder has, in this order:
 * tokenizer.json; vocab.json + merges.txt (+ added_tokens.json) with
 * `preset`; bpe_simple_vocab_16e6.txt.gz (CLIP). RWD_E_NOTFOUND if none.
 */
int rwd_tokenizer_load_dir(const char *dir, rwd_tokenizer_preset preset,
	const rwd_tokenizer_params *params, rwd_tokenizer **out, rwd_error *err) RWD_WARN_UNUSED;

/* Free a tokenizer. Accepts NULL. */
void rwd_tokenizer_free(rwd_tokenizer *tok);

typedef struct rwd_encode_params {
	int add_special_tokens; /* apply the post-processor (bos/eos); default 1 */
	/* Truncate to this many ids, special tokens included (0 = never).
	 * The post-processor's tokens are kept: CLIP's 77 gives
	 * bos + first 75 + eos. */
	size_t max_length;
	int truncate_left;      /* keep the last ids instead of the first */
} rwd_encode_params;

rwd_encode_params rwd_encode_default_params(void);

typedef struct rwd_token_ids {
	int32_t *ids;        /* in the caller's arena */
	size_t n;            /* ids returned */
	size_t n_full;       /* ids before truncation (== n when not truncated) */
} rwd_token_ids;

/*
 * Encode UTF-8 `text` (len bytes, may contain NUL) into token ids.
 * All memory (ids and scratch) comes from `arena`. Thread-safe: `tok` is
 * only read. Errors: RWD_E_INVALID (text is not valid UTF-8, or max_length
 * smaller than the special tokens), RWD_E_NOMEM / RWD_E_LIMIT (arena),
 * RWD_E_LIMIT (a regex hit its backtracking limit).
 */
int rwd_tokenizer_encode(const rwd_tokenizer *tok, const char *text, size_t len,
	const rwd_encode_params *p, rwd_arena *arena, rwd_token_ids *out,
	rwd_error *err) RWD_WARN_UNUSED;

/* Id of a token string (added tokens first, then the model vocab); -1 if none. */
int32_t rwd_tokenizer_token_to_id(const rwd_tokenizer *tok, const char *token);

/* Token string of an id (borrowed from tok), or NULL. */
const char *rwd_tokenizer_id_to_token(const rwd_tokenizer *tok, int32_t id);

/* 1 + the largest id (model vocab and added tokens). */
size_t rwd_tokenizer_vocab_size(const rwd_tokenizer *tok);

/* tokenizer.json's `truncation.max_length`, 0 when absent. */
size_t rwd_tokenizer_truncation_length(const rwd_tokenizer *tok);

/* Number of ids the post-processor adds to a single sequence. */
size_t rwd_tokenizer_num_special_added(const rwd_tokenizer *tok);

#endif
