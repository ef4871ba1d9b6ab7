/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once
#include <stddef.h>

extern const struct CMUnitTest glob_tests[];
extern const size_t n_glob_tests;
