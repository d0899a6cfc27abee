/*
 * tests/parity/tokenizer_harness.c — drive lib/text's tokenizer for the
 * parity scripts (test_tokenizer_*.js), which compare with HF tokenizers.
 *
 *   tokenizer_harness [-m MAXLEN] [-n] json  TOKENIZER.JSON
 *   tokenizer_harness [-m MAXLEN] [-n] vocab VOCAB.JSON MERGES.TXT qwen2|llama3|gpt2|clip [ADDED.JSON]
 *   tokenizer_harness [-m MAXLEN] [-n] gz    BPE.TXT.GZ
 *   tokenizer_harness [-m MAXLEN] [-n] [-p] wp-vocab VOCAB.TXT [SPECIAL...]
 *   tokenizer_harness [-m MAXLEN] [-n] [-p] wp-json  TOKENIZER.JSON [SPECIAL...]
 *
 * Reads one JSON string per line on stdin, writes one JSON array of ids per
 * line on stdout ({"error": "..."} when encoding fails). -m truncates to
 * MAXLEN ids (special tokens kept), -n leaves out the post-processor tokens.
 * wp-*: lib/text/wordpiece; each SPECIAL is added with
 * rwd_wordpiece_add_special (ImageReward's [DEC] [ENC]); -p pads to MAXLEN.
 */
#include "text/tokenizer.h"
#include "text/wordpiece.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: tokenizer_harness [-m N] [-n] json FILE | vocab V M PRESET [ADDED] | gz FILE\n");
	return 2;
}

static void print_ids(const int32_t *ids, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++)
		printf(i ? ",%d" : "%d", ids[i]);
	fputs("]\n", stdout);
}

static int run_wordpiece(int argc, char **argv, const rwd_encode_params *ep, int pad)
{
	rwd_wordpiece *tok = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	int rc = strcmp(argv[0], "wp-vocab") == 0 ? rwd_wordpiece_load_vocab(argv[1], NULL, &tok, &err)
		: rwd_wordpiece_load_json(argv[1], NULL, &tok, &err);
	for (int i = 2; rc == 0 && i < argc; i++)
		rc = rwd_wordpiece_add_special(tok, argv[i], NULL, &err);
	if (rc) {
		char buf[1024];
		fprintf(stderr, "load failed: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	rwd_wordpiece_encode_params wp = rwd_wordpiece_encode_default_params();
	wp.add_special_tokens = ep->add_special_tokens;
	wp.max_length = ep->max_length;
	wp.pad_to_max_length = pad;
	rwd_arena *arena = rwd_arena_create(1 << 20, 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		json_t *s = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		if (!json_is_string(s)) {
			fprintf(stderr, "bad input line: %s\n", je.text);
			return 1;
		}
		rwd_wordpiece_ids ids;
		rwd_error_clear(&err);
		if (rwd_wordpiece_encode(tok, json_string_value(s), json_string_length(s), &wp, arena, &ids, &err)) {
			json_t *o = json_pack("{s:s}", "error", err.msg);
			char *d = json_dumps(o, JSON_COMPACT);
			printf("%s\n", d);
			free(d);
			json_decref(o);
		} else {
			print_ids(ids.ids, ids.n_total);
		}
		json_decref(s);
		rwd_arena_reset(arena);
	}
	free(line);
	rwd_arena_destroy(arena);
	rwd_wordpiece_free(tok);
	return 0;
}

int main(int argc, char **argv)
{
	rwd_encode_params ep = rwd_encode_default_params();
	int opt, pad = 0;
	while ((opt = getopt(argc, argv, "m:np")) != -1) {
		if (opt == 'm')
			ep.max_length = (size_t)strtoul(optarg, NULL, 10);
		else if (opt == 'n')
			ep.add_special_tokens = 0;
		else if (opt == 'p')
			pad = 1;
		else
			return usage();
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		return usage();
	if (strncmp(argv[0], "wp-", 3) == 0)
		return run_wordpiece(argc, argv, &ep, pad);
	rwd_tokenizer *tok = NULL;
	rwd_error err;
	rwd_error_clear(&err);
	int rc;
	if (strcmp(argv[0], "json") == 0) {
		rc = rwd_tokenizer_load_json(argv[1], NULL, &tok, &err);
	} else if (strcmp(argv[0], "gz") == 0) {
		rc = rwd_tokenizer_load_clip_bpe_gz(argv[1], NULL, &tok, &err);
	} else if (strcmp(argv[0], "vocab") == 0 && argc >= 4) {
		rwd_tokenizer_preset p = strcmp(argv[3], "qwen2") == 0 ? RWD_TOKENIZER_QWEN2 :
			strcmp(argv[3], "llama3") == 0 ? RWD_TOKENIZER_LLAMA3 :
			strcmp(argv[3], "gpt2") == 0 ? RWD_TOKENIZER_GPT2 :
			strcmp(argv[3], "clip") == 0 ? RWD_TOKENIZER_CLIP : 0;
		rc = rwd_tokenizer_load_vocab_merges(argv[1], argv[2], argc >= 5 ? argv[4] : NULL, p, NULL, &tok, &err);
	} else {
		return usage();
	}
	if (rc) {
		char buf[1024];
		fprintf(stderr, "load failed: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	rwd_arena *arena = rwd_arena_create(1 << 20, 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		json_t *s = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		if (!json_is_string(s)) {
			fprintf(stderr, "bad input line: %s\n", je.text);
			return 1;
		}
		rwd_token_ids ids;
		rwd_error_clear(&err);
		rc = rwd_tokenizer_encode(tok, json_string_value(s), json_string_length(s), &ep, arena, &ids, &err);
		if (rc) {
			json_t *o = json_pack("{s:s}", "error", err.msg);
			char *d = json_dumps(o, JSON_COMPACT);
			printf("%s\n", d);
			free(d);
			json_decref(o);
		} else {
			putchar('[');
			for (size_t i = 0; i < ids.n; i++)
				printf(i ? ",%d" : "%d", ids.ids[i]);
			fputs("]\n", stdout);
		}
		json_decref(s);
		rwd_arena_reset(arena);
	}
	free(line);
	rwd_arena_destroy(arena);
	rwd_tokenizer_free(tok);
	return 0;
}
