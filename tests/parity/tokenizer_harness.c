/*
 * tests/parity/tokenizer_harness.c — drive lib/text's tokenizer for the
 * parity scripts (test_tokenizer_*.js), which compare with HF tokenizers.
 *
 *   tokenizer_harness [-m MAXLEN] [-n] json  TOKENIZER.JSON
 *   tokenizer_harness [-m MAXLEN] [-n] vocab VOCAB.JSON MERGES.TXT qwen2|llama3|gpt2|clip [ADDED.JSON]
 *   tokenizer_harness [-m MAXLEN] [-n] gz    BPE.TXT.GZ
 *
 * Reads one JSON string per line on stdin, writes one JSON array of ids per
 * line on stdout ({"error": "..."} when encoding fails). -m truncates to
 * MAXLEN ids (special tokens kept), -n leaves out the post-processor tokens.
 */
#include "text/tokenizer.h"

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

int main(int argc, char **argv)
{
	rwd_encode_params ep = rwd_encode_default_params();
	int opt;
	while ((opt = getopt(argc, argv, "m:n")) != -1) {
		if (opt == 'm')
			ep.max_length = (size_t)strtoul(optarg, NULL, 10);
		else if (opt == 'n')
			ep.add_special_tokens = 0;
		else
			return usage();
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		return usage();
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
