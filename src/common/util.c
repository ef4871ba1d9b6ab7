/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>

#include "common/util.h"

char **strv_free(char **l)
{
        if (!l)
                return NULL;
        for (char **s = l; *s; s++)
                free(*s);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l)
{
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

int strv_consume(char ***l, char *s)
{
        size_t n;
        char **t;

        if (!s)
                return -ENOMEM;
        n = strv_length(*l);
        t = realloc(*l, sizeof(char *) * (n + 2));
        if (!t) {
                free(s);
                return -ENOMEM;
        }
        t[n] = s;
        t[n + 1] = NULL;
        *l = t;
        return 0;
}

int strv_extend(char ***l, const char *s)
{
        return strv_consume(l, strdup(s));
}

char **strv_copy(char *const *l)
{
        _cleanup_strv_free_ char **c = NULL;

        if (!l)
                return NULL;
        c = calloc(1, sizeof(char *));
        if (!c)
                return NULL;
        STRV_FOREACH (s, l)
                if (strv_extend(&c, *s) < 0)
                        return NULL;
        return TAKE_PTR(c);
}

bool strv_contains(char *const *l, const char *s)
{
        STRV_FOREACH (i, l)
                if (streq(*i, s))
                        return true;
        return false;
}

int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;

        if (isempty(s))
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                unsigned d;

                if (*p < '0' || *p > '9')
                        return -EINVAL;
                d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
        _cleanup_free_ char *num = NULL;
        uint64_t mult = 1, v;
        size_t n;
        int r;

        if (isempty(s))
                return -EINVAL;
        n = strlen(s);
        switch (s[n - 1]) {
        case 'K':
                mult = 1ULL << 10;
                break;
        case 'M':
                mult = 1ULL << 20;
                break;
        case 'G':
                mult = 1ULL << 30;
                break;
        case 'T':
                mult = 1ULL << 40;
                break;
        default:
                break;
        }
        num = strndup(s, mult == 1 ? n : n - 1);
        if (!num)
                return -ENOMEM;
        r = parse_u64(num, UINT64_MAX / mult, &v);
        if (r < 0)
                return r;
        *ret = v * mult;
        return 0;
}

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;

        for (;;) {
                ssize_t k;

                if (alloc - size < 4096) {
                        size_t na = alloc ? alloc * 2 : 8192;
                        char *t;

                        if (na > max + 1)
                                na = max + 1;
                        if (na <= size)
                                return -EFBIG;
                        t = realloc(buf, na + 1);
                        if (!t)
                                return -ENOMEM;
                        buf = t;
                        alloc = na;
                }
                k = read(fd, buf + size, alloc - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                size += (size_t)k;
                if (size > max)
                        return -EFBIG;
        }
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        return read_full_fd(fd, max, ret, ret_size);
}

int write_all(int fd, const void *buf, size_t len)
{
        const char *p = buf;

        while (len > 0) {
                ssize_t k = write(fd, p, len);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                p += k;
                len -= (size_t)k;
        }
        return 0;
}

/* Length of a valid UTF-8 sequence starting at s, or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s)
{
        size_t n;
        uint32_t cp;

        if (s[0] < 0x80)
                return 1;
        if ((s[0] & 0xe0) == 0xc0) {
                n = 2;
                cp = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                n = 3;
                cp = s[0] & 0x0f;
        } else if ((s[0] & 0xf8) == 0xf0) {
                n = 4;
                cp = s[0] & 0x07;
        } else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        /* C1 controls and bidi overrides can disguise text on a terminal. */
        if ((cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
            (cp >= 0x2066 && cp <= 0x2069))
                return 0;
        return n;
}

char *escape_for_terminal(const char *s)
{
        size_t len = strlen(s);
        char *out = malloc(len * 4 + 1), *o = out;
        const unsigned char *p = (const unsigned char *)s;

        if (!out)
                return NULL;
        while (*p) {
                size_t n = utf8_seq_len(p);

                if (n == 1 && *p >= 0x20 && *p != 0x7f && *p != '\\') {
                        *o++ = (char)*p++;
                } else if (n > 1) {
                        memcpy(o, p, n);
                        o += n;
                        p += n;
                } else {
                        sprintf(o, "\\x%02x", *p);
                        o += 4;
                        p++;
                }
        }
        *o = '\0';
        return out;
}

static bool needs_quoting(const char *s)
{
        if (!*s)
                return true;
        for (const char *p = s; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                            "-_./=:,+@%",
                            *p))
                        return true;
        return false;
}

char *argv_to_display(char *const *argv)
{
        size_t cap = 1;
        char *out, *o;

        STRV_FOREACH (a, argv)
                cap += strlen(*a) * 4 + 3;
        out = malloc(cap);
        if (!out)
                return NULL;
        o = out;
        STRV_FOREACH (a, argv) {
                if (a != argv)
                        *o++ = ' ';
                if (needs_quoting(*a)) {
                        *o++ = '\'';
                        for (const char *p = *a; *p; p++) {
                                if (*p == '\'') {
                                        memcpy(o, "'\\''", 4);
                                        o += 4;
                                } else
                                        *o++ = *p;
                        }
                        *o++ = '\'';
                } else {
                        size_t l = strlen(*a);
                        memcpy(o, *a, l);
                        o += l;
                }
        }
        *o = '\0';
        return out;
}

static uint64_t clock_usec(clockid_t c)
{
        struct timespec ts;

        clock_gettime(c, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t now_realtime_usec(void)
{
        return clock_usec(CLOCK_REALTIME);
}

uint64_t now_monotonic_usec(void)
{
        return clock_usec(CLOCK_MONOTONIC);
}
