/*
 * buf: the growable byte string used everywhere instead of fixed arrays.
 * The data is always NUL-terminated one past len, so buf_str() is free;
 * it may hold NULs inside (len is the truth).  Allocation failure is fatal.
 */
#ifndef HERMOD_BUF_H
#define HERMOD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_addc(struct buf *b, int c);
void buf_adds(struct buf *b, const char *s);
void buf_sets(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void buf_truncate(struct buf *b, size_t len);
void buf_consume(struct buf *b, size_t n);	/* drop n bytes from the front */
const char *buf_str(const struct buf *b);	/* never NULL */
char *buf_steal(struct buf *b);			/* caller frees; b is reset */
int buf_eq(const struct buf *b, const char *s);

#endif
