/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The copy of each record that leaves the file: a journald entry with a
 * fixed MESSAGE_ID and AIRLOCK_* fields, or, where journald is not running,
 * a syslog datagram to /dev/log. sd_journal_send() cannot tell us: it
 * returns 0 when /run/systemd/journal/socket does not exist (libsystemd
 * drops the entry silently on ENOENT), so we look for the socket ourselves. Either one carries the
 * chain head (seq and hash) to a place a later intruder must also reach to hide a truncation. A
 * missing copy never stops the writer: the file is the record.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "audit/audit-copy.h"
#include "common/util.h"

#define RETRY_USEC (5ULL * 1000000ULL)

int audit_copy_init(AuditCopy *c, AuditCopyMode mode, const char *syslog_socket)
{
        *c = (AuditCopy){ .mode = mode, .fd = -EBADF };
        c->path = strdup(syslog_socket ? syslog_socket : "/dev/log");
        return c->path ? 0 : -ENOMEM;
}

void audit_copy_done(AuditCopy *c)
{
        c->fd = safe_close(c->fd);
        free(c->path);
        c->path = NULL;
}

static int syslog_connect(AuditCopy *c)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint64_t now = now_monotonic_usec();

        if (c->fd >= 0)
                return 0;
        if (c->next_retry && now < c->next_retry)
                return -EAGAIN;
        if (strlen(c->path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, c->path);
        c->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                return negative_errno();
        /* Wait briefly when the daemon's queue is full (it holds only ~10
         * datagrams), rather than drop copies in a burst; never stall long. */
        {
                struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };

                (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = negative_errno();

                c->fd = safe_close(c->fd);
                c->next_retry = now + RETRY_USEC;
                return r;
        }
        return 0;
}

static int syslog_send(AuditCopy *c, const AuditCopyItem *it)
{
        char msg[512], stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        int n, r;

        r = syslog_connect(c);
        if (r < 0)
                return r;
        localtime_r(&t, &tm);
        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
        n = snprintf(msg, sizeof(msg),
                     "<%d>%s airlock-audit[%d]: seq=%llu hash=%s event=%s request=%s agent=%s "
                     "MESSAGE_ID=" AUDIT_JOURNAL_MESSAGE_ID,
                     LOG_AUTHPRIV | LOG_INFO, stamp, (int)getpid(), (unsigned long long)it->seq,
                     it->hash, it->event, it->request[0] ? it->request : "-",
                     it->agent[0] ? it->agent : "-");
        if (n < 0)
                return -EINVAL;
        if (send(c->fd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, MSG_NOSIGNAL) <
            0) {
                r = negative_errno();
                /* The daemon went away: reconnect later, not on every record. */
                c->fd = safe_close(c->fd);
                c->next_retry = now_monotonic_usec() + RETRY_USEC;
                return r;
        }
        return 0;
}

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static bool journal_running(void)
{
        struct stat st;

        return stat(JOURNAL_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int journal_send(const AuditCopyItem *it)
{
        if (!journal_running())
                return -ENOENT;
        return sd_journal_send(
                "MESSAGE=airlock audit seq=%llu event=%s request=%s agent=%s",
                (unsigned long long)it->seq, it->event, it->request[0] ? it->request : "-",
                it->agent[0] ? it->agent : "-", "MESSAGE_ID=" AUDIT_JOURNAL_MESSAGE_ID,
                "PRIORITY=%d", LOG_INFO, "SYSLOG_FACILITY=%d", LOG_AUTHPRIV >> 3,
                "SYSLOG_IDENTIFIER=airlock-audit", "AIRLOCK_SEQ=%llu", (unsigned long long)it->seq,
                "AIRLOCK_HASH=%s", it->hash, "AIRLOCK_EVENT=%s", it->event, "AIRLOCK_REQUEST=%s",
                it->request, "AIRLOCK_AGENT=%s", it->agent, NULL);
}

void audit_copy_send(AuditCopy *c, const AuditCopyItem *it)
{
        int r;

        switch (c->mode) {
        case AUDIT_COPY_NONE:
                return;
        case AUDIT_COPY_JOURNAL:
                r = journal_send(it);
                break;
        case AUDIT_COPY_SYSLOG:
                r = syslog_send(c, it);
                break;
        case AUDIT_COPY_AUTO:
        default:
                /* Checked per record: journald may start or stop while we run. */
                r = journal_send(it);
                if (r < 0)
                        r = syslog_send(c, it);
                break;
        }
        if (r < 0)
                c->failures++;
        else
                c->sent++;
}
