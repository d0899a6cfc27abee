/*
 * text/wordpiece.h — BERT's WordPiece tokenizer (bert-base-uncased and
 * friends), as Hugging Face `tokenizers` runs it, so ids equal its ids (the
 * parity test runs the Rust library through node on >= 2,000 strings).
 *
 * Loaded once from a vocab.txt (one token per line, the line number is the
 * id, as transformers' BertTokenizer reads it) or a tokenizer.json whose
 * model is WordPiece; immutable afterwards, so any number of threads may
 * encode with it at once. Encoding allocates only from the caller's arena.
 *
 * The pipeline (tokenizers' BertNormalizer, BertPreTokenizer, WordPiece,
 * BertProcessing/TemplateProcessing):
 *   1. special tokens ([PAD] [UNK] [CLS] [SEP] [MASK], and any added with
 *      rwd_wordpiece_add_special, e.g. ImageReward's [DEC] [ENC]) are split
 *      out of the raw text, leftmost-longest, before any normalisation;
 *   2. BertNormalizer on each remaining piece: clean_text (drop NUL, U+FFFD,
 *      Cc/Cf/Co/Cs except \t\n\r; every White_Space char becomes ' '),
 *      handle_chinese_chars (spaces around CJK ideographs), strip_accents
 *      (NFD then drop Mn; follows lowercase when unset), lowercase (Rust's
 *      char::to_lowercase, İ included);
 *   3. BertPreTokenizer: split on whitespace, each punctuation char (ASCII
 *      punctuation or Unicode P*) a word of its own;
 *   4. WordPiece: greedy longest match from the left, later pieces with the
 *      `##` prefix; a word with no match at some position, or longer than
 *      max_input_chars_per_word (100) chars, is one [UNK];
 *   5. [CLS] A [SEP], truncation to max_length that keeps both, optional
 *      padding to max_length with [PAD] (attention mask = the first n ids).
 * The character classes follow the tables tokenizers uses (the
 * unicode_categories crate, Unicode 8.0): see wordpiece.c.
 * Not supported (RWD_E_UNSUPPORTED at load): other normalizers or
 * pre-tokenizers, added tokens with normalized/lstrip/rstrip/single_word.
 */
#ifndef RWD_TEXT_WORDPIECE_H
#define RWD_TEXT_WORDPIECE_H

#include "core/arena.h"
#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rwd_wordpiece rwd_wordpiece;

/* Limits on every size read from the (untrusted) files. */
typedef struct rwd_wordpiece_params {
	size_t max_file_bytes;   /* vocab.txt / tokenizer.json (16 MiB) */
	size_t max_vocab;        /* vocabulary entries (1 Mi) */
	size_t max_token_bytes;  /* bytes of one token string (512) */
	size_t max_added_tokens; /* special / added tokens (1024) */
	/* vocab.txt only (tokenizer.json says it itself): uncased (1, as
	 * bert-base-uncased) or cased (0). */
	int lowercase;
} rwd_wordpiece_params;

rwd_wordpiece_params rwd_wordpiece_default_params(void);

/*
 * Load a vocab.txt: id = line number (0-based), the line's trailing
 * whitespace trimmed, a later duplicate overriding an earlier one (as
 * tokenizers' WordPiece::read_file). [UNK] must be present; [CLS] [SEP]
 * [PAD] [MASK] become special tokens when present. BertNormalizer with
 * clean_text, handle_chinese_chars, lowercase = params->lowercase.
 * params may be NULL (defaults). On failure *out stays NULL and err names
 * the file and line.
 */
int rwd_wordpiece_load_vocab(const char *path, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err) RWD_WARN_UNUSED;
int rwd_wordpiece_load_vocab_bytes(const char *data, size_t len, const char *name,
	const rwd_wordpiece_params *params, rwd_wordpiece **out, rwd_error *err) RWD_WARN_UNUSED;

/*
 * Load a tokenizer.json with a WordPiece model, a BertNormalizer (or none)
 * and a BertPreTokenizer; its added_tokens and post-processor
 * (BertProcessing, or TemplateProcessing of the form X $A Y) are honoured.
 * err names the JSON path of the offending value.
 */
int rwd_wordpiece_load_json(const char *path, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err) RWD_WARN_UNUSED;
int rwd_wordpiece_load_json_bytes(const char *data, size_t len, const char *name,
	const rwd_wordpiece_params *params, rwd_wordpiece **out, rwd_error *err) RWD_WARN_UNUSED;

/* A folder: tokenizer.json if present, else vocab.txt. RWD_E_NOTFOUND if none. */
int rwd_wordpiece_load_dir(const char *dir, const rwd_wordpiece_params *params,
	rwd_wordpiece **out, rwd_error *err) RWD_WARN_UNUSED;

/*
 * Add a special token matched in the raw text, as transformers'
 * add_special_tokens does: the vocab id if `content` is in the vocabulary,
 * else the next id (1 + the largest so far). Load time only: not safe while
 * another thread encodes. *id (may be NULL) receives the id.
 */
int rwd_wordpiece_add_special(rwd_wordpiece *tok, const char *content, int32_t *id,
	rwd_error *err) RWD_WARN_UNUSED;

void rwd_wordpiece_free(rwd_wordpiece *tok); /* accepts NULL */

typedef struct rwd_wordpiece_encode_params {
	int add_special_tokens; /* [CLS] ... [SEP] (default 1) */
	size_t max_length;      /* truncate to this many ids, specials kept (0 = never) */
	int pad_to_max_length;  /* pad with [PAD] up to max_length (default 0) */
} rwd_wordpiece_encode_params;

rwd_wordpiece_encode_params rwd_wordpiece_encode_default_params(void);

typedef struct rwd_wordpiece_ids {
	int32_t *ids;   /* in the caller's arena; n_total entries */
	size_t n;       /* real ids (attention mask 1); the rest are [PAD] */
	size_t n_total; /* n + padding */
	size_t n_full;  /* real ids before truncation */
} rwd_wordpiece_ids;

/*
 * Encode `len` bytes of UTF-8 `text` (NUL allowed). Memory from `arena`.
 * Thread-safe (tok is only read). Errors: RWD_E_INVALID (not UTF-8,
 * max_length below the special tokens, padding without a [PAD] token or
 * without max_length), RWD_E_NOMEM / RWD_E_LIMIT (arena).
 */
int rwd_wordpiece_encode(const rwd_wordpiece *tok, const char *text, size_t len,
	const rwd_wordpiece_encode_params *p, rwd_arena *arena, rwd_wordpiece_ids *out,
	rwd_error *err) RWD_WARN_UNUSED;

/* Id of a token (special tokens first, then the vocabulary), or -1. */
int32_t rwd_wordpiece_token_to_id(const rwd_wordpiece *tok, const char *token);
/* 1 + the largest id. */
size_t rwd_wordpiece_vocab_size(const rwd_wordpiece *tok);
/* Ids of [PAD], [CLS], [SEP] (or the post-processor's), -1 when absent. */
int32_t rwd_wordpiece_pad_id(const rwd_wordpiece *tok);

#endif
