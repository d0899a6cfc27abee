/*
 * tests/rwd_check.h — shared scaffolding for the check suites.
 *
 * RWD_CHECK_MAIN(make_suite) defines main(): run the suite forked (check's
 * default), print check's "NN%: Checks: N, Failures: N, Errors: N" line, and
 * exit non-zero on any failure. rwd_fixture_path() finds ../shared/fixtures
 * beside the source tree.
 *
 * Skips: check has no skip status, so RWD_SKIP(why) prints why, counts the
 * skip through a pipe (it works across check's forks) and returns from the
 * test; main() then exits 77, meson's SKIP, if nothing failed. A test that
 * may skip (it needs a fixture, PyTorch, IPv6) lives in a test case tagged
 * with what it needs, and tests/unit/meson.build runs each tag as a meson
 * test of its own (<suite>-<tag>), so a skip is counted by scripts/test and
 * never hides the checks that did run.
 */
#ifndef RWD_TESTS_CHECK_H
#define RWD_TESTS_CHECK_H

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The skip counter: one byte per skipped test, written by the (forked) test. */
static int rwd__skips[2] = { -1, -1 };

/* Marks the running test skipped and prints why; the caller returns. */
static inline void rwd_skip(const char *test, const char *why)
{
	printf("SKIP %s: %s\n", test, why);
	fflush(stdout);
	if (rwd__skips[1] >= 0) {
		char b = 's';
		ssize_t n = write(rwd__skips[1], &b, 1);
		(void)n;
	}
}

/* End the running test as skipped (inside START_TEST): prints why. */
#define RWD_SKIP(why)                                                  \
	do {                                                           \
		rwd_skip(__func__, (why));                             \
		return;                                                \
	} while (0)

/* The skips counted so far (main, after the run). */
static inline int rwd__skips_count(void)
{
	int n = 0;
	char b[256];
	ssize_t r;
	while (rwd__skips[0] >= 0 && (r = read(rwd__skips[0], b, sizeof(b))) > 0)
		n += (int)r;
	return n;
}

#define RWD_CHECK_MAIN(make_suite)                                     \
	int main(void)                                                 \
	{                                                              \
		if (pipe(rwd__skips) != 0)                             \
			rwd__skips[0] = rwd__skips[1] = -1;            \
		else                                                   \
			fcntl(rwd__skips[0], F_SETFL, O_NONBLOCK);     \
		SRunner *sr = srunner_create(make_suite());            \
		srunner_run_all(sr, CK_ENV);                           \
		int nf = srunner_ntests_failed(sr);                    \
		srunner_free(sr);                                      \
		int ns = rwd__skips_count();                           \
		if (nf)                                                \
			return EXIT_FAILURE;                           \
		if (ns) {                                              \
			printf("%d tests skipped: exit 77 (SKIP)\n", ns); \
			return 77;                                     \
		}                                                      \
		return EXIT_SUCCESS;                                   \
	}

/* $RWD_SOURCE_ROOT (set by meson) or ".". */
static inline const char *rwd_source_root(void)
{
	const char *r = getenv("RWD_SOURCE_ROOT");
	return r && *r ? r : ".";
}

/*
 * Path of a file under ../shared/fixtures/ into buf; returns buf, or NULL
 * when it does not exist (the caller then prints why it skips).
 */
static inline const char *rwd_fixture_path(const char *rel, char *buf, size_t size)
{
	const char *env = getenv("RWD_FIXTURES");
	if (env && *env)
		snprintf(buf, size, "%s/%s", env, rel);
	else
		snprintf(buf, size, "%s/../shared/fixtures/%s", rwd_source_root(), rel);
	return access(buf, R_OK) == 0 ? buf : NULL;
}

#endif
