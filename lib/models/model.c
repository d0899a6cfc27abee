/* models/model.c — the generic model handle and the registry of kinds. */
#include "models/model.h"

#include "core/base64.h"
#include "core/thread.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The kinds. Each lib/models/<kind>.c defines one `const rwd_model_ops
 * rwd__<kind>_ops` and is listed here once it exists.
 */
extern const rwd_model_ops rwd__mlp_ops;
extern const rwd_model_ops rwd__clip_ops;
extern const rwd_model_ops rwd__image_metrics_ops;
extern const rwd_model_ops rwd__rules_ops;
extern const rwd_model_ops rwd__seqcls_ops;
extern const rwd_model_ops rwd__sql_ops; /* models/sql.c */
extern const rwd_model_ops rwd__imagereward_ops; /* models/imagereward.c */
extern const rwd_model_ops rwd__ocr_ops; /* models/ocr.c */
extern const rwd_model_ops rwd__vlm_ops; /* models/vlm.c */
/* models/vlm.c: a Qwen2-VL / Qwen2.5-VL reward-model architecture name */
int rwd__vlm_architecture(const char *arch);

static const rwd_model_ops *const kinds[] = {
	&rwd__mlp_ops,
	&rwd__clip_ops,
	&rwd__image_metrics_ops,
	&rwd__rules_ops,
	&rwd__seqcls_ops,
	&rwd__sql_ops,
	&rwd__imagereward_ops,
	&rwd__ocr_ops,
	&rwd__vlm_ops,
	NULL,
};

struct rwd_model {
	const rwd_model_ops *ops;
	void *state;
	rwd_model_info info;
	rwd_batch_limits limits;
	char *name;
	char *path;
};

rwd_model_params rwd_model_default_params(void)
{
	rwd_model_params p = {0};
	p.limits.max_batch_size = 32;
	p.limits.max_batch_tokens = 16384;
	p.limits.max_tokens = 4096;
	p.limits.max_image_pixels = 4096ull * 4096ull;
	return p;
}

const rwd_model_ops *rwd_model_kind(const char *kind)
{
	for (size_t i = 0; kinds[i]; i++)
		if (strcmp(kinds[i]->kind, kind) == 0)
			return kinds[i];
	return NULL;
}

int rwd_model_kind_threaded(const char *kind)
{
	const rwd_model_ops *ops = kind ? rwd_model_kind(kind) : NULL;
	return ops ? !ops->serial_blas : 1;
}

const char *const *rwd_model_kinds(void)
{
	static const char *names[sizeof(kinds) / sizeof(kinds[0])];
	/* Filled on each call; the table is constant, so this is idempotent
	 * and safe to race on (every writer stores the same pointers). */
	for (size_t i = 0; kinds[i]; i++)
		names[i] = kinds[i]->kind;
	return names;
}

/* Map a Hugging Face "architectures" entry to one of our kinds; has_head: the
 * folder holds a reward_head.json (a Qwen2-VL / Qwen2.5-VL reward model). */
static const char *kind_from_architecture(const char *arch, int has_head)
{
	size_t n = strlen(arch);
	static const char suffix[] = "ForSequenceClassification";
	if (strcmp(arch, "CLIPModel") == 0)
		return "clip";
	if (strcmp(arch, "ImageReward") == 0)
		return "imagereward";
	if (has_head && rwd__vlm_architecture(arch))
		return "vlm";
	if (n > sizeof(suffix) - 1 && strcmp(arch + n - (sizeof(suffix) - 1), suffix) == 0)
		return "seqcls";
	/* process reward models (Qwen2.5-Math-PRM) and token classifiers: seqcls's step heads */
	if (strcmp(arch, "Qwen2ForProcessRewardModel") == 0 || strcmp(arch, "Qwen2ForTokenClassification") == 0 ||
	    strcmp(arch, "Qwen3ForTokenClassification") == 0 || strcmp(arch, "LlamaForTokenClassification") == 0)
		return "seqcls";
	return NULL;
}

/*
 * Decide the kind of the model at `path`: a .safetensors file is an `mlp`
 * head; a folder's config.json says it with "rewardd_kind" or
 * "architectures".
 */
static int detect_kind(const char *path, char *out, size_t size, rwd_error *err)
{
	size_t n = strlen(path);
	if (n > 12 && strcmp(path + n - 12, ".safetensors") == 0) {
		snprintf(out, size, "mlp");
		return 0;
	}
	char cfg[PATH_MAX];
	snprintf(cfg, sizeof(cfg), "%s/config.json", path);
	json_error_t jerr;
	json_t *root = json_load_file(cfg, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rwd_error_where(err, cfg, NULL);
		rwd_error_at(err, jerr.line, jerr.column, jerr.position);
		return rwd_errorf(err, RWD_E_NOTFOUND,
			"cannot tell the model kind: %s (give the kind explicitly or add config.json)",
			jerr.text);
	}
	int r = 0;
	const char *kind = json_string_value(json_object_get(root, "rewardd_kind"));
	if (!kind) {
		json_t *arch = json_object_get(root, "architectures");
		char head[PATH_MAX];
		snprintf(head, sizeof(head), "%s/reward_head.json", path);
		FILE *hf = fopen(head, "r");
		int has_head = hf != NULL;
		if (hf)
			fclose(hf);
		size_t i;
		json_t *v;
		json_array_foreach(arch, i, v) {
			if (json_is_string(v) && (kind = kind_from_architecture(json_string_value(v), has_head)))
				break;
		}
	}
	if (!kind) {
		rwd_error_where(err, cfg, "architectures");
		r = rwd_errorf(err, RWD_E_UNSUPPORTED,
			"no supported architecture (expected CLIPModel, *ForSequenceClassification, "
			"Qwen2ForProcessRewardModel, *ForTokenClassification, Qwen2(.5)-VL with a reward_head.json "
			"or \"rewardd_kind\")");
	} else {
		snprintf(out, size, "%s", kind);
	}
	json_decref(root);
	return r;
}

int rwd_model_load(const rwd_model_params *params, rwd_model **out, rwd_error *err)
{
	char kind_buf[64];
	const char *kind = params->kind;
	rwd_model *m = NULL;
	int r;

	if (!params->name || !params->name[0])
		return rwd_errorf(err, RWD_E_INVALID, "a model needs a name");
	if (!kind) {
		if (!params->path)
			return rwd_errorf(err, RWD_E_INVALID, "model '%s' has neither a kind nor a path", params->name);
		r = detect_kind(params->path, kind_buf, sizeof(kind_buf), err);
		if (r)
			return r;
		kind = kind_buf;
	}
	const rwd_model_ops *ops = rwd_model_kind(kind);
	if (!ops) {
		rwd_error_where(err, NULL, "kind");
		return rwd_errorf(err, RWD_E_UNSUPPORTED, "unknown model kind '%s'", kind);
	}

	m = calloc(1, sizeof(*m));
	if (!m)
		return rwd_errorf(err, RWD_E_NOMEM, "out of memory");
	m->ops = ops;
	m->limits = params->limits;
	m->name = strdup(params->name);
	m->path = strdup(params->path ? params->path : "");
	if (!m->name || !m->path) {
		r = rwd_errorf(err, RWD_E_NOMEM, "out of memory");
		goto fail;
	}
	uint64_t t0 = rwd_now_ns();
	r = ops->load(params->path, params->options, &m->limits, &m->state, err);
	if (r)
		goto fail;
	ops->describe(m->state, &m->info);
	if (m->info.n_dims > RWD_MAX_DIMS) {
		r = rwd_errorf(err, RWD_E_LIMIT, "model '%s' has %zu dimensions, more than %d",
			params->name, m->info.n_dims, RWD_MAX_DIMS);
		goto fail;
	}
	m->info.name = m->name;
	m->info.kind = ops->kind;
	m->info.path = m->path;
	if (!m->info.inputs)
		m->info.inputs = ops->inputs; /* describe() may name a loaded model's own inputs */
	m->info.load_seconds = (double)(rwd_now_ns() - t0) / 1e9;
	*out = m;
	return 0;
fail:
	rwd_model_free(m);
	return r;
}

void rwd_model_free(rwd_model *m)
{
	if (!m)
		return;
	if (m->state)
		m->ops->free(m->state);
	free(m->name);
	free(m->path);
	free(m);
}

const rwd_model_info *rwd_model_get_info(const rwd_model *m)
{
	return &m->info;
}

const rwd_batch_limits *rwd_model_limits(const rwd_model *m)
{
	return &m->limits;
}

int rwd_model_dim_index(const rwd_model *m, const char *name)
{
	for (size_t i = 0; i < m->info.n_dims; i++)
		if (strcmp(m->info.dims[i], name) == 0)
			return (int)i;
	return -1;
}

int rwd_model_check(const rwd_model *m, const json_t *item, size_t *cost, rwd_error *err)
{
	*cost = 1;
	if (!json_is_object(item))
		return rwd_errorf(err, RWD_E_INVALID, "an item must be a JSON object");
	return m->ops->check(m->state, item, cost, err);
}

int rwd_model_check_item(const rwd_model *m, const rwd_item *item, size_t *cost, rwd_error *err)
{
	if (!item->vec)
		return rwd_model_check(m, item->input, cost, err);
	*cost = 1;
	if (!m->info.vector_input || item->vec_n != m->info.vector_input) {
		rwd_error_where(err, NULL, "embedding");
		return rwd_errorf(err, RWD_E_INVALID, "%zu floats, but model '%s' takes %s%zu", item->vec_n,
			m->info.name, m->info.vector_input ? "" : "no vector; ", m->info.vector_input);
	}
	return 0;
}

int rwd_model_vector_b64(const char *s, size_t n, size_t dim, float *out, rwd_error *err)
{
	rwd_base64_params bp = rwd_base64_default_params();
	bp.max_out = 0; /* the text is bounded by the request's string limit */
	size_t bytes = 0;
	rwd_error_where(err, NULL, "embedding_b64");
	/* one pass into out; a longer vector is counted again for the message */
	int r = rwd_base64_decode_into(s, n, &bp, (uint8_t *)out, dim * sizeof(float), &bytes, err);
	if (r == RWD_E_LIMIT)
		r = rwd_base64_decoded_len(s, n, &bp, &bytes, err);
	if (r)
		return r;
	if (bytes % 4)
		return rwd_errorf(err, RWD_E_INVALID,
			"\"embedding_b64\" decodes to %zu bytes, not a whole number of float32 (4 bytes each)", bytes);
	if (bytes / 4 != dim)
		return rwd_errorf(err, RWD_E_INVALID, "\"embedding_b64\" holds %zu float32, the model takes %zu",
			bytes / 4, dim);
	for (size_t i = 0; i < dim; i++) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		uint32_t u;
		memcpy(&u, &out[i], 4);
		u = __builtin_bswap32(u);
		memcpy(&out[i], &u, 4);
#endif
		if (!isfinite(out[i]))
			return rwd_errorf(err, RWD_E_INVALID, "\"embedding_b64\" element %zu is %s", i,
				isnan(out[i]) ? "NaN" : "infinite");
	}
	rwd_error_where(err, NULL, "");
	return 0;
}

int rwd_model_scratch_new(const rwd_model *m, void **scratch, rwd_error *err)
{
	*scratch = NULL;
	if (!m->ops->scratch_new)
		return 0;
	return m->ops->scratch_new(m->state, scratch, err);
}

void rwd_model_scratch_free(const rwd_model *m, void *scratch)
{
	if (scratch && m->ops->scratch_free)
		m->ops->scratch_free(scratch);
}

int rwd_model_run(const rwd_model *m, void *scratch, rwd_item *const *items, size_t n,
	rwd_arena *arena)
{
	/* Items that fail preparation are compacted out of the forward batch. */
	rwd_item *stack_ok[64];
	rwd_item **ok = n <= 64 ? stack_ok : rwd_arena_alloc(arena, n * sizeof(*ok));
	if (!ok) {
		/* Nothing ran: every item fails, with a reason, and none is a score. */
		int r = rwd_arena_over_limit(arena) ? RWD_E_LIMIT : RWD_E_NOMEM;
		for (size_t i = 0; i < n; i++) {
			memset(items[i]->present, 0, sizeof(items[i]->present));
			items[i]->status = r;
			rwd_errorf(&items[i]->err, r, "no memory for a batch of %zu items%s", n,
				r == RWD_E_LIMIT ? " (the batch arena's limit)" : "");
		}
		return r;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		rwd_item *it = items[i];
		memset(it->present, 0, sizeof(it->present));
		if (m->ops->prepare) {
			rwd_error_clear(&it->err);
			int r = m->ops->prepare(m->state, scratch, it, arena, &it->err);
			if (r) {
				it->status = r;
				continue;
			}
		}
		ok[k++] = it;
	}
	if (k == 0)
		return 0;
	int r = m->ops->forward(m->state, scratch, ok, k, arena);
	if (r) {
		for (size_t i = 0; i < k; i++) {
			memset(ok[i]->present, 0, sizeof(ok[i]->present));
			json_decref(ok[i]->extra); /* a failed item carries no outputs */
			ok[i]->extra = NULL;
			if (!ok[i]->status) {
				ok[i]->status = r;
				rwd_errorf(&ok[i]->err, r, "the batch's forward pass failed: %s", rwd_strerror(r));
			}
		}
	}
	return r;
}

void rwd_item_release(rwd_item *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++) {
		json_decref(items[i].extra);
		items[i].extra = NULL;
	}
}
