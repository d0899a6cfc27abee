/*
 * numparse-harness — drives lib/core/numparse for test_numparse.py.
 *
 * stdin: one JSON number token per line. stdout: one line per token,
 * "<16 hex digits of the double> <8 hex digits of (float)double>", or
 * "LIMIT" / "FORMAT" when rwd_numparse_json refuses it (or did not consume
 * the whole line). With the argument "bench", it parses every line 20 times
 * and prints ns per token for numparse and for strtod on stderr instead.
 */
#include "core/error.h"
#include "core/numparse.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	size_t cap = 1 << 20, len = 0, nl = 0;
	char *all = malloc(cap);
	int c;
	while (all && (c = getchar()) != EOF) {
		if (len + 1 >= cap) {
			char *p = realloc(all, cap *= 2);
			if (!p) {
				free(all);
				return 1;
			}
			all = p;
		}
		all[len++] = (char)c;
		nl += c == '\n';
	}
	if (!all)
		return 1;
	all[len] = '\0';
	size_t *starts = malloc((nl + 1) * sizeof(*starts)), n = 0;
	for (size_t i = 0; i < len;) {
		starts[n++] = i;
		char *e = memchr(all + i, '\n', len - i);
		if (!e)
			break;
		*e = '\0';
		i = (size_t)(e - all) + 1;
	}
	if (argc > 1 && strcmp(argv[1], "bench") == 0) {
		volatile double sink = 0;
		double t0 = now();
		for (int rep = 0; rep < 20; rep++)
			for (size_t k = 0; k < n; k++) {
				double d = 0;
				size_t used;
				rwd_numparse_json(all + starts[k], strlen(all + starts[k]), &d, &used);
				sink += d;
			}
		double t1 = now();
		for (int rep = 0; rep < 20; rep++)
			for (size_t k = 0; k < n; k++)
				sink += strtod(all + starts[k], NULL);
		double t2 = now();
		fprintf(stderr, "numparse %.1f ns/token, strtod %.1f ns/token (%zu tokens)\n",
			(t1 - t0) * 1e9 / (20.0 * (double)n), (t2 - t1) * 1e9 / (20.0 * (double)n), n);
		free(starts);
		free(all);
		return 0;
	}
	for (size_t k = 0; k < n; k++) {
		const char *s = all + starts[k];
		size_t sl = strlen(s), used = 0;
		double d;
		int r = rwd_numparse_json(s, sl, &d, &used);
		if (r == 0 && used != sl)
			r = RWD_E_FORMAT;
		if (r) {
			puts(r == RWD_E_LIMIT ? "LIMIT" : "FORMAT");
			continue;
		}
		float f = (float)d;
		uint64_t u;
		uint32_t v;
		memcpy(&u, &d, 8);
		memcpy(&v, &f, 4);
		printf("%016" PRIx64 " %08" PRIx32 "\n", u, v);
	}
	free(starts);
	free(all);
	return 0;
}
