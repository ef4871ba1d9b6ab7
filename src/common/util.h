/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macros.h"

/* NULL-terminated string vectors ("strv"). */
typedef char **Strv;

/* Frees every element and the vector; accepts NULL. Returns NULL. */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char *const *l);
/* Appends a copy of s; returns 0 or -ENOMEM (the vector is unchanged on failure). */
int strv_extend(char ***l, const char *s);
/* Appends s, taking ownership (freed on failure). */
int strv_consume(char ***l, char *s);
/* Deep copy; NULL on allocation failure (or if l is NULL). */
char **strv_copy(char *const *l);
bool strv_contains(char *const *l, const char *s);

#define STRV_FOREACH(s, l) for (char *const *s = (l); s && *s; s++)

/*
 * Parses a decimal unsigned integer strictly: digits only, no sign, no
 * whitespace, no trailing bytes, and at most max. Returns 0 and writes
 * *ret, or -EINVAL (not a number) / -ERANGE (above max).
 */
int parse_u64(const char *s, uint64_t max, uint64_t *ret);

/*
 * Parses a size with an optional K/M/G/T suffix (powers of 1024), e.g.
 * "512M". Same strictness and return values as parse_u64.
 */
int parse_size(const char *s, uint64_t *ret);

/*
 * Reads all of fd into a new NUL-terminated buffer, refusing more than max
 * bytes with -EFBIG. Returns 0; *ret (caller frees) and *ret_size on success.
 */
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size);

/* Opens path (O_RDONLY|O_CLOEXEC|O_NOCTTY) and reads it as read_full_fd. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);

/* Writes all of buf, retrying on EINTR and short writes. Returns 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

/*
 * Escapes s for display to a human: control characters, DEL, backslash and
 * invalid UTF-8 become \xNN, so text written by an agent can never move the
 * cursor or forge lines. Returns a new string or NULL on allocation failure.
 */
char *escape_for_terminal(const char *s);

/* Joins argv with spaces, single-quoting words that need it for a shell. */
char *argv_to_display(char *const *argv);

/* Current time, CLOCK_REALTIME, in microseconds since the epoch. */
uint64_t now_realtime_usec(void);
/* CLOCK_MONOTONIC in microseconds. */
uint64_t now_monotonic_usec(void);
