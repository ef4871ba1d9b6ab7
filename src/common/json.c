/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"

json_t *json_from_strv(char *const *l)
{
        json_t *a = json_array();

        if (!a)
                return NULL;
        STRV_FOREACH (s, l)
                if (json_array_append_new(a, json_string(*s)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

char **strv_from_json(const json_t *a)
{
        _cleanup_strv_free_ char **l = NULL;
        size_t n;

        if (!json_is_array(a))
                return NULL;
        n = json_array_size(a);
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                const json_t *s = json_array_get(a, i);

                if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s) ||
                    !(l[i] = strdup(json_string_value(s))))
                        return NULL;
        }
        return TAKE_PTR(l);
}
