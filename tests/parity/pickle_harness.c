/*
 * tests/parity/pickle_harness.c — drives lib/compat/pickle for
 * test_pickle_python.py.
 *
 *   pickle-harness load FILE   decode FILE, print the value as canonical JSON
 *                              (below), or "ERROR <code> <offset> <message>"
 *                              and exit 2
 *   pickle-harness dump FILE   read JSON from FILE, write its pickle to stdout
 *
 * Canonical JSON: None null, bool true/false, int {"int": n}, float
 * {"float": repr-exact number}, str string, bytes {"bytes": hex}, list
 * {"list": [...]}, tuple {"tuple": [...]}, dict {"dict": [[k, v], ...]},
 * ndarray {"ndarray": {"dtype": "<U7", "shape": [..], "data": hex}} (U
 * arrays of one dimension add "str": [...]), image {"image": {"mode",
 * "size": [w, h], "palette": [..] | null, "data": hex}}, opaque
 * {"opaque": true}.
 */
#include "compat/imgrl.h"
#include "compat/pickle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *hex(const uint8_t *d, size_t n)
{
	char *s = malloc(2 * n + 1);
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02x", d[i]);
	s[2 * n] = '\0';
	json_t *j = json_string(s);
	free(s);
	return j;
}

static json_t *canon(const rwd_pickle_value *v)
{
	json_t *a;
	switch (v->type) {
	case RWD_PICKLE_NONE:
		return json_null();
	case RWD_PICKLE_BOOL:
		return json_boolean(v->i);
	case RWD_PICKLE_INT:
		return json_pack("{sI}", "int", (json_int_t)v->i);
	case RWD_PICKLE_FLOAT:
		if (!isfinite(v->f)) /* JSON has no inf/nan: spelled as Python's repr */
			return json_pack("{ss}", "float", isnan(v->f) ? "nan" : v->f > 0 ? "inf" : "-inf");
		return json_pack("{sf}", "float", v->f);
	case RWD_PICKLE_STR:
		return json_stringn((const char *)v->data, v->len);
	case RWD_PICKLE_BYTES:
		return json_pack("{so}", "bytes", hex(v->data, v->len));
	case RWD_PICKLE_LIST:
	case RWD_PICKLE_TUPLE:
		a = json_array();
		for (size_t i = 0; i < v->n; i++)
			json_array_append_new(a, canon(v->items[i]));
		return json_pack("{so}", v->type == RWD_PICKLE_LIST ? "list" : "tuple", a);
	case RWD_PICKLE_DICT:
		a = json_array();
		for (size_t i = 0; i < v->n; i++)
			json_array_append_new(a, json_pack("[oo]", canon(v->items[2 * i]), canon(v->items[2 * i + 1])));
		return json_pack("{so}", "dict", a);
	case RWD_PICKLE_NDARRAY: {
		char dt[32];
		snprintf(dt, sizeof(dt), "%c%c%zu", v->byteorder, v->dtype_kind,
			v->dtype_kind == 'U' ? v->itemsize / 4 : v->itemsize);
		json_t *shape = json_array();
		for (size_t i = 0; i < v->ndim; i++)
			json_array_append_new(shape, json_integer((json_int_t)v->shape[i]));
		json_t *o = json_pack("{ss so so}", "dtype", dt, "shape", shape, "data", hex(v->data, v->len));
		if (v->dtype_kind == 'U' && v->ndim == 1) {
			json_t *strs = json_array();
			char buf[65536];
			for (size_t i = 0; i < v->shape[0]; i++) {
				long n = rwd_pickle_ndarray_str(v, i, buf, sizeof(buf));
				json_array_append_new(strs, n < 0 ? json_null() : json_stringn(buf, (size_t)n));
			}
			json_object_set_new(o, "str", strs);
		}
		return json_pack("{so}", "ndarray", o);
	}
	case RWD_PICKLE_IMAGE: {
		json_t *pal = json_null();
		if (v->palette) {
			pal = json_array();
			for (size_t i = 0; i < v->palette->n; i++)
				json_array_append_new(pal, json_integer((json_int_t)v->palette->items[i]->i));
		}
		/* and as RGB (compat/imgrl: Image.convert("RGB")), or the refusal */
		size_t np = (size_t)v->width * v->height;
		uint8_t *rgb = malloc(3 * np + 1);
		rwd_error e;
		rwd_error_clear(&e);
		json_t *rj = rwd_imgrl_image_rgb(v, rgb, &e) ? json_pack("{ss}", "error", e.msg) : hex(rgb, 3 * np);
		free(rgb);
		return json_pack("{s{ss s[ii] so so so}}", "image", "mode", v->mode, "size", (int)v->width,
			(int)v->height, "palette", pal, "data", hex(v->data, v->len), "rgb", rj);
	}
	default:
		return json_pack("{sb}", "opaque", 1);
	}
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)sz + 1);
	*n = fread(b, 1, (size_t)sz, f);
	fclose(f);
	return b;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 1;
	size_t n;
	uint8_t *buf = slurp(argv[2], &n);
	if (!buf)
		return 1;
	rwd_error err;
	rwd_error_clear(&err);
	if (strcmp(argv[1], "dump") == 0) {
		json_error_t je;
		json_t *j = json_loadb((const char *)buf, n, JSON_DECODE_ANY, &je);
		uint8_t *out;
		size_t len;
		if (!j || rwd_pickle_dump_json(j, &out, &len, &err))
			return 2;
		fwrite(out, 1, len, stdout);
		free(out);
		json_decref(j);
		free(buf);
		return 0;
	}
	rwd_arena *a = rwd_arena_create(0, 0);
	rwd_pickle_limits lim = rwd_pickle_default_limits();
	const char *env = getenv("RWD_PICKLE_MAX_DEPTH");
	if (env)
		lim.max_depth = (size_t)atoi(env);
	rwd_pickle_value *v;
	int r = rwd_pickle_load(buf, n, &lim, a, &v, &err);
	if (r) {
		printf("ERROR %s %lld %s\n", rwd_strerror(r), (long long)err.offset, err.msg);
		rwd_arena_destroy(a);
		free(buf);
		return 2;
	}
	json_t *c = canon(v);
	char *s = json_dumps(c, JSON_COMPACT | JSON_REAL_PRECISION(17));
	puts(s);
	free(s);
	json_decref(c);
	rwd_arena_destroy(a);
	free(buf);
	return 0;
}
