/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* String lists as JSON arrays, exactly (no string is mended or dropped). */

#include <jansson.h>

/* A new JSON array of l's strings; NULL if one is not valid UTF-8, or on ENOMEM. */
json_t *json_from_strv(char *const *l);

/*
 * The strings of a (NULL-terminated, malloc'd) list; NULL unless a is an
 * array of strings without NUL bytes, or on ENOMEM.
 */
char **strv_from_json(const json_t *a);
