/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>

#include "common/macros.h"

/*
 * Program-level logging. Library code logs at debug level at most; programs
 * log once, where they handle an error, with a message a sysadmin can act on.
 */

enum { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARNING = 1, LOG_LEVEL_INFO = 2, LOG_LEVEL_DEBUG = 3 };

/* Sets the program name printed before messages ("airlock", "airlockd"). */
void log_set_program(const char *name);
void log_set_level(int level);
int log_get_level(void);

/* Prints "PROGRAM: fmt" to stderr if level <= the current level. */
void log_msg(int level, const char *fmt, ...) _printf_(2, 3);

#define log_error(...)   log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
