/*
 * smtpd_data.c: the message content of DATA and BDAT, and the header
 * smtpd puts in front of it.
 *
 * DATA (RFC 5321 4.1.1.4, 4.5.2): the data ends only with the sequence
 * CR LF . CR LF, where the CR LF before the dot ended a line.  A bare LF
 * or a bare CR never ends a line for this purpose, so "\n.\n",
 * "\r\n.\n", "\n.\r\n" and "\r.\r" are content, never a message boundary
 * (SMTP smuggling, CVE-2023-51764 and relatives).  With smtpd_bare_lf =
 * reject such a message is refused (550 5.5.2) after its end; with
 * normalize each bare LF or CR becomes a line end.  A line that starts
 * with a dot loses that dot (dot-stuffing).
 *
 * Content goes to the queue with LF line ends (queue_file.h); it is
 * staged in s->stage and written in large pieces.  While the header
 * section lasts, Received: fields are counted (hop limit).  The size
 * counted against message_size_limit is that of the decoded content;
 * once over the limit nothing more is stored but the input is still
 * read to its end, so the session stays in step.
 *
 * BDAT (RFC 3030): chunks are taken as they come; CR LF becomes LF, a
 * CR LF split across chunks included.
 */
#include "smtpd.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void
smtpd_data_begin(struct smtpd_session *s)
{
	s->ds = DS_SOL;
	s->msg_size = 0;
	s->too_big = s->bare_bad = s->hdr_done = 0;
	s->hdr_pos = 0;
	s->hops = 0;
	s->bdat_cr = 0;
	buf_reset(&s->stage);
}

static void
header_track(struct smtpd_session *s, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && !s->hdr_done; i++) {
		char c = p[i];

		if (c == '\n') {
			if (s->hdr_pos == 0)
				s->hdr_done = 1;	/* the empty line */
			s->hdr_pos = 0;
			continue;
		}
		if (s->hdr_pos < 9)
			s->hdr_pfx[s->hdr_pos] = c;
		s->hdr_pos++;
		if (s->hdr_pos == 9 && !strncasecmp(s->hdr_pfx, "Received:", 9))
			s->hops++;
	}
}

static void
emit(struct smtpd_session *s, const char *p, size_t n)
{
	if (!s->hdr_done)
		header_track(s, p, n);
	s->msg_size += (long long)n;
	if (s->cf->size_limit > 0 && s->msg_size > s->cf->size_limit)
		s->too_big = 1;
	if (s->too_big || s->bare_bad || !s->msg_open) {
		if (s->stage.len)
			buf_free(&s->stage);
		return;
	}
	if (s->stage.len + n > 65536 && s->stage.len) {
		s->ops->msg_write(s->ctx, s->stage.data, s->stage.len);
		buf_reset(&s->stage);
	}
	if (n >= 65536)
		s->ops->msg_write(s->ctx, p, n);
	else
		buf_add(&s->stage, p, n);
}

static void
bare(struct smtpd_session *s)
{
	if (s->cf->bare_lf_normalize)
		emit(s, "\n", 1);
	else
		s->bare_bad = 1;
}

size_t
smtpd_data_feed(struct smtpd_session *s, const char *p, size_t n, int *end)
{
	size_t i = 0, start;

	*end = 0;
	while (i < n) {
		switch (s->ds) {
		case DS_MID:
			start = i;
			while (i < n && p[i] != '\r' && p[i] != '\n')
				i++;
			if (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n') {
				/* the common case: the line and its end at once */
				emit(s, p + start, i - start);
				emit(s, "\n", 1);
				i += 2;
				s->ds = DS_SOL;
				break;
			}
			if (i > start)
				emit(s, p + start, i - start);
			if (i == n)
				break;
			if (p[i] == '\r')
				s->ds = DS_CR;
			else
				bare(s);	/* bare LF: stays inside the line */
			i++;
			break;
		case DS_CR:
			if (p[i] == '\n') {
				emit(s, "\n", 1);
				s->ds = DS_SOL;
				i++;
			} else {
				bare(s);	/* bare CR; look at p[i] again */
				s->ds = DS_MID;
			}
			break;
		case DS_SOL:
			if (p[i] == '.') {
				s->ds = DS_DOT;
				i++;
			} else
				s->ds = DS_MID;
			break;
		case DS_DOT:
			if (p[i] == '\r') {
				s->ds = DS_DOT_CR;
				i++;
			} else
				s->ds = DS_MID;	/* a stuffed dot: dropped */
			break;
		case DS_DOT_CR:
			if (p[i] == '\n') {
				*end = 1;
				return i + 1;
			}
			bare(s);
			s->ds = DS_MID;
			break;
		}
	}
	return i;
}

void
smtpd_bdat_feed(struct smtpd_session *s, const char *p, size_t n)
{
	size_t i = 0, start;

	if (s->bdat_cr && n) {
		s->bdat_cr = 0;
		if (p[0] == '\n') {
			emit(s, "\n", 1);
			i = 1;
		} else
			emit(s, "\r", 1);
	}
	while (i < n) {
		start = i;
		while (i < n && p[i] != '\r')
			i++;
		if (i > start)
			emit(s, p + start, i - start);
		if (i == n)
			break;
		if (i + 1 == n) {
			s->bdat_cr = 1;
			break;
		}
		if (p[i + 1] == '\n') {
			emit(s, "\n", 1);
			i += 2;
		} else {
			emit(s, "\r", 1);
			i++;
		}
	}
}

void
smtpd_bdat_end(struct smtpd_session *s)
{
	if (s->bdat_cr) {
		s->bdat_cr = 0;
		emit(s, "\r", 1);
	}
}

void
smtpd_received(struct smtpd_session *s, struct buf *out)
{
	buf_reset(out);
	if (s->local_user) {
		buf_printf(out, "Received: by %s (%s, from %s)\n\twith %s",
		    s->cf->hostname, s->cf->mail_name, s->local_user, smtpd_proto_name(s));
		if (s->queue_id[0])	/* not yet known on the way through maildrop/ */
			buf_printf(out, " id %s", s->queue_id);
	} else {
		buf_printf(out, "Received: from %s (%s [%s])\n", s->helo ? s->helo : "unknown",
		    s->client_name, s->client_addr);
		if (s->tls_desc)
			buf_printf(out, "\t(using %s)\n", s->tls_desc);
		if (s->auth_user)
			buf_printf(out, "\t(authenticated sender: %s)\n", s->auth_user);
		buf_printf(out, "\tby %s (%s) with %s id %s", s->cf->hostname,
		    s->cf->mail_name, smtpd_proto_name(s), s->queue_id);
	}
	if (s->nrcpt == 1)
		buf_printf(out, "\n\tfor <%s>", s->rcpt[0].addr);
	buf_adds(out, "; ");
	rfc5322_date(out, time(NULL));
	buf_addc(out, '\n');
}

void
smtpd_client_record(struct smtpd_session *s, struct buf *out)
{
	buf_reset(out);
	if (s->local_user)
		buf_printf(out, "local %s proto=%s", s->local_user, smtpd_proto_name(s));
	else
		buf_printf(out, "smtp client=%s helo=%s proto=%s", s->client_desc,
		    s->helo ? s->helo : "", smtpd_proto_name(s));
	if (s->tls_desc)
		buf_printf(out, " tls=%s", s->tls_desc);
	if (s->auth_user)
		buf_printf(out, " auth=%s", s->auth_user);
	if (out->len > QF_TEXT_MAX - 1)
		buf_truncate(out, QF_TEXT_MAX - 1);
}
