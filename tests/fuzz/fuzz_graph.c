/*
 * tests/fuzz/fuzz_graph.c — lib/nn/graph: graph.json validation and the
 * interpreter's run-time shape checks.
 *
 * Each input is a graph description parsed against a small fixed set of
 * float constants (built here as a safetensors file in memory: "w" [2,1,3,3],
 * "w2" [2,2,1,1], "b" [2], "v" [2], "one" [1], "m" [6,6]). A refusal must
 * leave no graph and a filled error; an accepted graph is run on a
 * [1, 2, 6, 6] input under a 65536-element limit, which must either give an
 * output tensor whose dims match its byte count or fail with an error.
 *
 * Run (clang, libFuzzer):
 *   CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-graph
 *   cp -r tests/fuzz/corpus/graph /tmp/graph-corpus
 *   build-fuzz/tests/fuzz/fuzz-graph -max_total_time=60 /tmp/graph-corpus
 * The seeds are written by tests/fuzz/make_graph_corpus.py.
 */
#include "nn/graph.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct { const char *name; int ndim; int64_t shape[2 + 2]; } consts[] = {
	{"b", 1, {2}}, {"m", 2, {6, 6}}, {"one", 1, {1}}, {"v", 1, {2}},
	{"w", 4, {2, 1, 3, 3}}, {"w2", 4, {2, 2, 1, 1}},
};

static unsigned char *make_weights(size_t *len)
{
	char hdr[1024];
	size_t off = 0, h = 0;
	h += (size_t)snprintf(hdr + h, sizeof(hdr) - h, "{");
	for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++) {
		size_t n = 1;
		char shape[64] = "";
		size_t sl = 0;
		for (int k = 0; k < consts[i].ndim; k++) {
			n *= (size_t)consts[i].shape[k];
			sl += (size_t)snprintf(shape + sl, sizeof(shape) - sl, "%s%lld", k ? "," : "",
				(long long)consts[i].shape[k]);
		}
		h += (size_t)snprintf(hdr + h, sizeof(hdr) - h,
			"%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}", i ? "," : "",
			consts[i].name, shape, off, off + n * 4);
		off += n * 4;
	}
	h += (size_t)snprintf(hdr + h, sizeof(hdr) - h, "}");
	while (h % 8)
		hdr[h++] = ' ';
	unsigned char *buf = malloc(8 + h + off);
	if (!buf)
		abort();
	uint64_t hl = h;
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)(hl >> (8 * i));
	memcpy(buf + 8, hdr, h);
	float *f = (float *)(void *)(buf + 8 + h);
	for (size_t i = 0; i < off / 4; i++)
		f[i] = 0.25f + (float)(i % 7) * 0.125f; /* positive: BatchNorm variances stay valid */
	*len = 8 + h + off;
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char *wbuf;
	static size_t wlen;
	if (!wbuf)
		wbuf = make_weights(&wlen);
	rwd_weights *w = NULL;
	rwd_error err = {0};
	if (rwd_safetensors_parse(wbuf, wlen, "fuzz-weights", NULL, &w, &err))
		abort();
	rwd_graph *g = (rwd_graph *)1;
	int r = rwd_graph_parse((const char *)data, size, w, "fuzz", &g, &err);
	if (r) {
		if (g || r >= 0 || err.code != r || !err.msg[0])
			abort();
		rwd_weights_free(w);
		return 0;
	}
	float x[72];
	for (int i = 0; i < 72; i++)
		x[i] = (float)((i * 37) % 11) - 5.0f;
	int64_t dims[4] = {1, 2, 6, 6};
	rwd_graph_limits lim = {.max_elems = 65536};
	rwd_graph_tensor out;
	rwd_error_clear(&err);
	r = rwd_graph_run(g, x, 4, dims, &lim, &out, &err);
	if (r) {
		if (out.data || err.code != r || !err.msg[0])
			abort();
	} else {
		uint64_t n = 1;
		for (int i = 0; i < out.rank; i++)
			n *= (uint64_t)out.dims[i];
		if (n > lim.max_elems || !out.data)
			abort();
		volatile float s = 0;
		for (uint64_t i = 0; i < n; i++)
			s += out.data[i];
		(void)s;
		free(out.data);
	}
	rwd_graph_free(g);
	rwd_weights_free(w);
	return 0;
}
