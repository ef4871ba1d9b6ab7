/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Part of the plan module; see plan-internal.h for who writes what. */
#include "plan/plan-internal.h"
