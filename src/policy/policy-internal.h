/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Internal to the policy module: limits, the YAML tree and helpers shared by its files. */

#include "common/util.h"
#include "policy/policy.h"

#define POLICY_MAX_GLOB_LEN     4096
#define POLICY_MAX_BRACE_DEPTH  8
#define POLICY_MAX_YAML_DEPTH   32
#define POLICY_MAX_YAML_NODES   200000
#define POLICY_MAX_ERRORS       100
#define POLICY_MAX_APPROVERS    16
#define POLICY_MAX_PIDS         4194304
#define POLICY_MIN_TTL_USEC     (1ULL * 1000000ULL)
#define POLICY_MAX_TTL_USEC     (7ULL * 24 * 3600 * 1000000ULL)
#define POLICY_DEFAULT_TTL_USEC (15ULL * 60 * 1000000ULL)

typedef enum {
        YNODE_SCALAR,
        YNODE_SEQUENCE,
        YNODE_MAPPING,
} YNodeType;

/* One node of a parsed YAML document, with its 1-based position. */
typedef struct YNode {
        YNodeType type;
        unsigned line, column;
        char *value;          /* scalars: the text (NUL-terminated) */
        size_t len;           /* scalars: its length (may contain no NUL: checked) */
        bool plain;           /* scalars: unquoted */
        struct YNode **items; /* sequences: items; mappings: key, value, key, value... */
        size_t n_items;
        size_t cap;
} YNode;

/*
 * Parses one YAML document into a tree. Aliases, tags, several documents and
 * non-scalar keys are refused (a policy is plain data). Returns 0 and *ret,
 * or -EINVAL with line/column/message filled, or -ENOMEM.
 */
int ynode_parse(const char *text, size_t len, YNode **ret, unsigned *ret_line, unsigned *ret_column,
                char *msg, size_t msg_size);
YNode *ynode_free(YNode *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(YNode *, ynode_free)

/* 1 match, 0 no match, -1 too complex (the step budget ran out). */
int policy_glob_match_full(const char *pattern, const char *s, bool pathname);
bool policy_glob_is_literal(const char *pattern);
