/*
 * tests/rwd_check.h — shared scaffolding for the check suites.
 *
 * RWD_CHECK_MAIN(make_suite) defines main(): run the suite forked (check's
 * default), print check's "NN%: Checks: N, Failures: N, Errors: N" line, and
 * exit non-zero on any failure. rwd_fixture_path() finds ../shared/fixtures
 * beside the source tree; tests that need a fixture skip (exit 77 through
 * meson, or a passing test that prints why) when it is absent.
 */
#ifndef RWD_TESTS_CHECK_H
#define RWD_TESTS_CHECK_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RWD_CHECK_MAIN(make_suite)                                     \
	int main(void)                                                 \
	{                                                              \
		SRunner *sr = srunner_create(make_suite());            \
		srunner_run_all(sr, CK_ENV);                           \
		int nf = srunner_ntests_failed(sr);                    \
		srunner_free(sr);                                      \
		return nf ? EXIT_FAILURE : EXIT_SUCCESS;               \
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
