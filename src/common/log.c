/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"

static const char *program = "airlock";
static int max_level = -1;

void log_set_program(const char *name)
{
        program = name;
}

void log_set_level(int level)
{
        max_level = level;
}

int log_get_level(void)
{
        if (max_level < 0) {
                const char *e = getenv("AIRLOCK_DEBUG");
                max_level = (e && *e && !streq(e, "0")) ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
        }
        return max_level;
}

void log_msg(int level, const char *fmt, ...)
{
        va_list ap;
        int saved = errno;

        if (level > log_get_level())
                return;
        fprintf(stderr, "%s: ", program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        errno = saved;
}
