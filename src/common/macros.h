/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Ownership helpers in the style of systemd's src/basic: every heap pointer
 * and fd is declared with a cleanup attribute, handed over with TAKE_PTR /
 * TAKE_FD, and fds start as -EBADF.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _noreturn_     __attribute__((noreturn))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _must_check_   __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define TAKE_PTR(p)                      \
        ({                               \
                __typeof__(p) _p_ = (p); \
                (p) = NULL;              \
                _p_;                     \
        })

#define TAKE_FD(fd)              \
        ({                       \
                int _fd_ = (fd); \
                (fd) = -EBADF;   \
                _fd_;            \
        })

/* Define a cleanup function for pointers to a type with a NULL-accepting destructor. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p)     \
        {                                       \
                if (*p)                         \
                        func(*p);               \
        }

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Closes fd if valid, preserving errno; returns -EBADF for "fd = safe_close(fd)". */
static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/*
 * Overwrites memory in a way the compiler may not elide; for secrets. A
 * volatile loop rather than explicit_bzero(): the sanitizers see its
 * writes (glibc's are invisible to them), so a wipe past a buffer is
 * reported where it happens instead of corrupting the heap unseen.
 */
static inline void explicit_wipe(void *p, size_t n)
{
        volatile unsigned char *q = p;

        if (!p)
                return;
        while (n--)
                *q++ = 0;
}

static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b)     (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
#define isempty(s)      (!(s) || (s)[0] == '\0')
