/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"

typedef struct {
        uint64_t seq;
        char hash[AUDIT_HASH_HEX_LEN + 1];
        char event[24];
        char request[80]; /* truncated; "" if none */
        char agent[80];   /* truncated; "" if none */
} AuditCopyItem;

typedef struct {
        AuditCopyMode mode;
        int fd; /* syslog socket */
        char *path;
        uint64_t next_retry;
        uint64_t sent, failures;
} AuditCopy;

int audit_copy_init(AuditCopy *c, AuditCopyMode mode, const char *syslog_socket);
void audit_copy_done(AuditCopy *c);
/* Sends one record's copy; failures are counted, never fatal. Not thread-safe. */
void audit_copy_send(AuditCopy *c, const AuditCopyItem *it);
