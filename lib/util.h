/*
 * util: small helpers every program needs: checked allocation, complete
 * reads and writes, durable file operations, descriptor hygiene, and
 * parsing of the time and size values used in hermod.conf.
 */
#ifndef HERMOD_UTIL_H
#define HERMOD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "log.h"

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Complete I/O, retrying on EINTR and short counts.  read_full returns the
 * number of bytes read (less than n only at end of file) or -1. */
int write_full(int fd, const void *p, size_t n);
ssize_t read_full(int fd, void *p, size_t n);
/* Read a whole (regular, bounded) file into b; -1 with errno on error,
 * errno EFBIG when it is larger than max. */
int read_file(const char *path, struct buf *b, size_t max);

/* Read all of fd into b (replacing its content); -1 with errno, EFBIG
 * when there is more than max. */
int read_fd(int fd, struct buf *b, size_t max);

/* A stable dedupe: dup[i] (n bytes from the caller) = 1 when keys[i]
 * equals an earlier keys[j], else 0.  O(n log n). */
void strv_mark_dups(char *const *keys, size_t n, unsigned char *dup);

/* 1 if two NUL-terminated strings are equal, in time that depends only
 * on their lengths (password hashes). */
int str_eq_ct(const char *a, const char *b);

/* Big-endian 32-bit integers (the record formats of queue files and IPC). */
void be32_put(unsigned char *p, uint32_t v);
uint32_t be32_get(const unsigned char *p);

/* Length of the well-formed UTF-8 sequence of a non-ASCII character at
 * s (n bytes available), or 0: overlong forms, surrogates, code points
 * above U+10FFFF and the C1 controls (U+0080..U+009F) are refused. */
size_t utf8_char_len(const unsigned char *s, size_t n);

/* Durability: fsync a directory, or the directory holding path. */
int fsync_dir(const char *dir);
int fsync_parent(const char *path);
/* Write data to path atomically: path.tmp, fsync, rename, fsync dir. */
int write_file_atomic(const char *path, const void *p, size_t n, mode_t mode);
/* The same without the fsyncs: for a file that may be lost in a crash
 * (a cache, a hint), never for one whose loss loses mail. */
int write_file_atomic_nosync(const char *path, const void *p, size_t n, mode_t mode);
int mkdir_p(const char *path, mode_t mode);

int set_cloexec(int fd, int on);
int set_nonblock(int fd, int on);
/* Close every descriptor >= lowfd. */
void close_from(int lowfd);
/* Make sure 0, 1 and 2 are open (to /dev/null), so that a later open()
 * never becomes stdout by accident. */
void sane_fds(void);
/* Give the free pages of the heap back to the kernel (glibc
 * malloc_trim): for a process about to sit idle for long, an IMAP IDLE
 * session or a session's parent. */
void release_memory(void);

/* Load the passwd and group NSS modules now (a look-up of user and of
 * its groups), in a process whose children will look users up: what is
 * loaded before the fork is shared, not loaded again in each child. */
void nss_preload(const char *user);

/* FNV-1a, 64 bits (for hash tables, never for security). */
uint64_t hash_fnv1a(const void *p, size_t n);

/* Time: microseconds since the epoch, and monotonic milliseconds. */
int64_t now_us(void);
int64_t mono_ms(void);

/* "300", "300s", "5m", "2h", "5d", "1w" -> seconds. 0 ok, -1 bad. */
int parse_time(const char *s, long long *out);
/* "10240000", "10k", "10m", "1g" -> bytes. 0 ok, -1 bad. */
int parse_size(const char *s, long long *out);
/* "yes"/"no"/"true"/"false"/"1"/"0" -> 1/0; -1 bad. */
int parse_bool(const char *s);
/* Decimal integer in [min, max]; 0 ok, -1 bad. */
int parse_ll(const char *s, long long min, long long max, long long *out);

/* Trim ASCII white space in place, returning the start. */
char *str_trim(char *s);
void str_lower(char *s);
/* 1 if s contains CR, LF or NUL within its first n bytes. */
int has_crlfnul(const char *s, size_t n);
/* Split s on any of the separators, skipping empty fields; returns a
 * NULL-terminated vector (free with strv_free). */
char **str_split(const char *s, const char *seps);
void strv_free(char **v);
size_t strv_len(char *const *v);

/* RFC 5322 date of t in local time ("Sat, 21 Nov 2026 06:34:27 +0000"). */
void rfc5322_date(struct buf *out, time_t t);

#endif
