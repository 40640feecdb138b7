/*
 * test.h: a tiny TAP producer for the unit tests in t/unit/.  Each test
 * program prints "ok N - what" / "not ok N - what" lines and a plan at
 * the end; t/runtests counts them.  Exit status is 1 if anything failed.
 */
#ifndef HERMOD_TEST_H
#define HERMOD_TEST_H

#include <stdio.h>
#include <string.h>

static int test_n, test_failed;

#define ok(cond, ...) do { \
	int ok_c_ = (cond) ? 1 : 0; \
	printf("%sok %d - ", ok_c_ ? "" : "not ", ++test_n); \
	printf(__VA_ARGS__); \
	printf("\n"); \
	if (!ok_c_) { \
		test_failed++; \
		printf("#   failed at %s:%d\n", __FILE__, __LINE__); \
	} \
} while (0)

#define is_str(got, want, ...) do { \
	const char *is_g_ = (got), *is_w_ = (want); \
	int is_c_ = (is_g_ && is_w_) ? strcmp(is_g_, is_w_) == 0 : is_g_ == is_w_; \
	ok(is_c_, __VA_ARGS__); \
	if (!is_c_) \
		printf("#   got: '%s'\n#   expected: '%s'\n", is_g_ ? is_g_ : "(null)", is_w_ ? is_w_ : "(null)"); \
} while (0)

#define is_int(got, want, ...) do { \
	long long is_g_ = (long long)(got), is_w_ = (long long)(want); \
	ok(is_g_ == is_w_, __VA_ARGS__); \
	if (is_g_ != is_w_) \
		printf("#   got: %lld\n#   expected: %lld\n", is_g_, is_w_); \
} while (0)

static inline int
done_testing(void)
{
	printf("1..%d\n", test_n);
	return test_failed ? 1 : 0;
}

#endif
