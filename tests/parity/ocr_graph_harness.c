/*
 * ocr_graph_harness — drive lib/nn/graph for test_ocr_graph_ort.py:
 *   ocr-graph-harness DIR NET IN.f32 OUT.f32 D0 [D1 ...]
 * runs DIR/NET.graph.json + DIR/NET.safetensors on the float32 input IN.f32
 * of the given dims and writes the output's float32 bytes to OUT.f32; prints
 * the output dims and the run time on stdout.
 */
#include "core/thread.h"
#include "nn/graph.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc < 6 || argc - 5 > RWD_GRAPH_MAX_RANK) {
		fprintf(stderr, "usage: %s DIR NET IN.f32 OUT.f32 D0 [D1 ...]\n", argv[0]);
		return 2;
	}
	int rank = argc - 5;
	int64_t dims[RWD_GRAPH_MAX_RANK];
	size_t n = 1;
	for (int i = 0; i < rank; i++) {
		dims[i] = atoll(argv[5 + i]);
		n *= (size_t)dims[i];
	}
	float *x = malloc(n * sizeof(float) + 1);
	FILE *f = fopen(argv[3], "rb");
	if (!x || !f || fread(x, sizeof(float), n, f) != n) {
		fprintf(stderr, "cannot read %zu floats from %s\n", n, argv[3]);
		return 1;
	}
	fclose(f);
	rwd_graph *g;
	rwd_error err = {0};
	char buf[1024];
	if (rwd_graph_load(argv[1], argv[2], &g, &err)) {
		fprintf(stderr, "load: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	rwd_graph_tensor out;
	uint64_t t0 = rwd_now_ns();
	if (rwd_graph_run(g, x, rank, dims, NULL, &out, &err)) {
		fprintf(stderr, "run: %s\n", rwd_error_format(&err, buf, sizeof(buf)));
		return 1;
	}
	double secs = (double)(rwd_now_ns() - t0) / 1e9;
	size_t m = 1;
	printf("dims");
	for (int i = 0; i < out.rank; i++) {
		printf(" %lld", (long long)out.dims[i]);
		m *= (size_t)out.dims[i];
	}
	printf("\nseconds %.4f\n", secs);
	f = fopen(argv[4], "wb");
	if (!f || fwrite(out.data, sizeof(float), m, f) != m || fclose(f)) {
		fprintf(stderr, "cannot write %s\n", argv[4]);
		return 1;
	}
	free(out.data);
	free(x);
	rwd_graph_free(g);
	return 0;
}
