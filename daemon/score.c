/*
 * daemon/score.c — `rewardd score`: score JSON lines offline (see score.h).
 *
 *   rewardd score --model PATH [--kind KIND] [--options JSON] [--batch N]
 *
 * Each stdin line is one item object, exactly as in a /v1/rewards request's
 * "items" array. Items are checked, then scored in batches of up to N with
 * rwd_model_run(), the call the server's workers make. Output: one line per
 * input line, in order: {"id": …?, "scores": {dim: value, …}} or
 * {"id": …?, "error": {"code": …, "message": …, "field": …}}. A failed item
 * is never given a score. Exit status: 0 all items scored, 3 some items
 * failed, 1 usage/model errors, 2 I/O errors.
 */
#include "score.h"

#include "core/arena.h"
#include "core/error.h"
#include "models/model.h"
#include "nn/nn.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCORE_MAX_LINE (64u << 20)

struct pending {
	json_t *input;   /* owned; NULL when the line did not parse */
	rwd_item item;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rewardd score --model PATH [--kind KIND] [--options JSON] [--batch N]\n"
		"  Reads one JSON item per line on stdin, writes one JSON result per line.\n"
		"  --model PATH    model folder or .safetensors file (or built-in: --kind rules)\n"
		"  --kind KIND     model kind (default: from config.json / file type)\n"
		"  --options JSON  kind options object\n"
		"  --batch N       items per forward pass (default 32)\n");
}

static const char *code_name(int code)
{
	switch (code) {
	case RWD_E_LIMIT: return "too_large";
	case RWD_E_UNSUPPORTED: return "unsupported_media_type";
	case RWD_E_UNPROCESSABLE: return "unprocessable";
	case RWD_E_FORMAT: return "malformed";
	default: return "invalid";
	}
}

static int print_result(const rwd_model *m, struct pending *p)
{
	json_t *out = json_object();
	json_t *id = p->input ? json_object_get(p->input, "id") : NULL;
	if (id)
		json_object_set(out, "id", id);
	if (p->item.status) {
		json_t *e = json_object();
		json_object_set_new(e, "code", json_string(code_name(p->item.status)));
		json_object_set_new(e, "message", json_string(p->item.err.msg[0] ? p->item.err.msg
			: rwd_strerror(p->item.status)));
		if (p->item.err.object[0])
			json_object_set_new(e, "field", json_string(p->item.err.object));
		if (p->item.err.line > 0) {
			json_object_set_new(e, "line", json_integer(p->item.err.line));
			json_object_set_new(e, "column", json_integer(p->item.err.column));
		}
		json_object_set_new(out, "error", e);
	} else {
		const rwd_model_info *info = rwd_model_get_info(m);
		json_t *s = json_object();
		for (size_t d = 0; d < info->n_dims; d++) {
			if (!p->item.present[d])
				continue;
			/* non-finite values cannot be JSON numbers: report null, never a fake value */
			json_t *v = json_real(p->item.scores[d]);
			json_object_set_new(s, info->dims[d], v ? v : json_null());
		}
		json_object_set_new(out, "scores", s);
	}
	int r = json_dumpf(out, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(out);
	if (r || fputc('\n', stdout) == EOF)
		return RWD_E_IO;
	return 0;
}

static int flush_batch(const rwd_model *m, void *scratch, rwd_arena *arena,
	struct pending *batch, size_t n, int *failed)
{
	rwd_item *run[n ? n : 1];
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!batch[i].item.status)
			run[k++] = &batch[i].item;
	if (k)
		rwd_model_run(m, scratch, run, k, arena);
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		if (batch[i].item.status)
			*failed = 1;
		if (!r)
			r = print_result(m, &batch[i]);
		json_decref(batch[i].input);
		batch[i].input = NULL;
	}
	rwd_arena_reset(arena);
	fflush(stdout);
	return r;
}

int rwd_score_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, NULL, 'm'},
		{"kind", required_argument, NULL, 'k'},
		{"options", required_argument, NULL, 'o'},
		{"batch", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	rwd_model_params params = rwd_model_default_params();
	json_t *kind_opts = NULL;
	rwd_model *model = NULL;
	rwd_arena *arena = NULL;
	struct pending *batch = NULL;
	void *scratch = NULL;
	char *line = NULL;
	size_t cap = 0, n = 0, lineno = 0;
	int status = 1, failed = 0, c;
	rwd_error err;

	rwd_error_clear(&err);
	params.name = "score";
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:k:o:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': params.path = optarg; break;
		case 'k': params.kind = optarg; break;
		case 'o': {
			json_error_t je;
			json_decref(kind_opts);
			kind_opts = json_loads(optarg, JSON_REJECT_DUPLICATES, &je);
			if (!json_is_object(kind_opts)) {
				fprintf(stderr, "rewardd score: --options: %s\n",
					kind_opts ? "must be a JSON object" : je.text);
				goto out;
			}
			break;
		}
		case 'b': {
			char *end;
			long b = strtol(optarg, &end, 10);
			if (*end || b < 1 || b > 4096) {
				fprintf(stderr, "rewardd score: --batch must be 1..4096\n");
				goto out;
			}
			params.limits.max_batch_size = (size_t)b;
			break;
		}
		case 'h': usage(stdout); status = 0; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (!params.path && !params.kind) {
		usage(stderr);
		goto out;
	}
	params.options = kind_opts;
	rwd_nn_threading_init(0, NULL, 0);
	if (rwd_model_load(&params, &model, &err)) {
		char buf[1024];
		fprintf(stderr, "rewardd score: cannot load the model: %s\n",
			rwd_error_format(&err, buf, sizeof(buf)));
		goto out;
	}
	if (rwd_model_scratch_new(model, &scratch, &err)) {
		char buf[1024];
		fprintf(stderr, "rewardd score: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		goto out;
	}
	arena = rwd_arena_create(0, 0);
	batch = calloc(params.limits.max_batch_size, sizeof(*batch));
	if (!arena || !batch) {
		fprintf(stderr, "rewardd score: out of memory\n");
		goto out;
	}

	status = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		struct pending *p = &batch[n];
		memset(p, 0, sizeof(*p));
		rwd_error_clear(&p->item.err);
		p->item.index = lineno - 1;
		if ((size_t)len > SCORE_MAX_LINE) {
			p->item.status = rwd_errorf(&p->item.err, RWD_E_LIMIT,
				"line %zu is longer than %u bytes", lineno, SCORE_MAX_LINE);
		} else {
			json_error_t je;
			p->input = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &je);
			if (!p->input) {
				p->item.status = rwd_errorf(&p->item.err, RWD_E_FORMAT, "%s", je.text);
				rwd_error_at(&p->item.err, (int)lineno, je.column, je.position);
			} else {
				p->item.input = p->input;
				p->item.status = rwd_model_check(model, p->input, &p->item.cost, &p->item.err);
			}
		}
		if (++n == params.limits.max_batch_size) {
			if (flush_batch(model, scratch, arena, batch, n, &failed)) {
				status = 2;
				goto out;
			}
			n = 0;
		}
	}
	if (ferror(stdin)) {
		fprintf(stderr, "rewardd score: reading stdin: %s\n", strerror(errno));
		status = 2;
	}
	if (flush_batch(model, scratch, arena, batch, n, &failed))
		status = 2;
	n = 0;
	if (!status && failed)
		status = 3;
out:
	for (size_t i = 0; batch && i < n; i++)
		json_decref(batch[i].input);
	free(batch);
	free(line);
	rwd_arena_destroy(arena);
	if (model)
		rwd_model_scratch_free(model, scratch);
	rwd_model_free(model);
	json_decref(kind_opts);
	return status;
}
