/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A test program (not installed): appends records to an audit log from
 * many threads through the real writer and prints one line per
 * acknowledged record, "ack SEQ THREAD INDEX", written only after
 * audit_append() returned, i.e. after the record was synced. The crash
 * test SIGKILLs it at random moments and checks every printed ack against
 * the file. Also used to write logs for the CLI tests and the benchmark.
 *
 *   audit-writer --state-dir DIR [--threads N] [--records N] [--seal-every N]
 *                [--seal-usec U] [--no-close] [--quiet] [--story]
 *                [--copy none|auto|syslog] [--syslog-socket PATH]
 *
 * --records is per thread (0: until killed). --story writes one request's
 * whole life (session, submit, decide, approve, exec, end) per iteration.
 * Prints "head SEQ:HASH" after the appends and, once closed, "closed".
 */
#include <getopt.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>

#include "audit/audit.h"
#include "common/util.h"

static AuditWriter *writer;
static uint64_t records_per_thread;
static bool quiet, story;
static volatile int first_error;

static void say(const char *fmt, ...) _printf_(1, 2);
static void say(const char *fmt, ...)
{
        char buf[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        /* One write per line: lines from threads never interleave (< PIPE_BUF). */
        if (n > 0)
                (void)write_all(STDOUT_FILENO, buf, (size_t)n);
}

static int append_one(unsigned t, uint64_t i)
{
        static const char *const steps[] = {
                AUDIT_EVENT_SESSION_START,   AUDIT_EVENT_REQUEST_SUBMITTED,
                AUDIT_EVENT_REQUEST_DECIDED, AUDIT_EVENT_REQUEST_APPROVED,
                AUDIT_EVENT_EXEC_START,      AUDIT_EVENT_EXEC_END,
                AUDIT_EVENT_SESSION_END
        };
        char req[48], sess[32];
        const char *event = story ? steps[i % ELEMENTSOF(steps)] : AUDIT_EVENT_REQUEST_SUBMITTED;
        uint64_t seq = 0;
        json_t *f;
        int r;

        snprintf(req, sizeof(req), "req-%u-%llu", t, (unsigned long long)(story ? i / 7 : i));
        snprintf(sess, sizeof(sess), "sess-%u", t);
        f = json_pack("{s:s, s:s, s:{s:s, s:s, s:i, s:s}, s:[s, s, s], s:s, s:{s:i, s:I, s:s}}",
                      "event", event, "request", req, "agent", "name", t % 2 ? "claude" : "codex",
                      "session", sess, "uid", 1000 + (int)t, "started_by", "alice", "argv",
                      "systemctl", "restart", "corosync", "target", "pve1", "details", "t", (int)t,
                      "i", (json_int_t)i, "why", "restart after config change");
        if (!f)
                return -ENOMEM;
        if (story && streq(event, AUDIT_EVENT_REQUEST_APPROVED))
                json_object_set_new(json_object_get(f, "details"), "approver_name",
                                    json_string("bob"));
        if (story && streq(event, AUDIT_EVENT_EXEC_END))
                json_object_set_new(json_object_get(f, "details"), "exit_status", json_integer(0));
        r = audit_append(writer, f, &seq);
        json_decref(f);
        if (r < 0)
                return r;
        if (!quiet)
                say("ack %llu %u %llu\n", (unsigned long long)seq, t, (unsigned long long)i);
        return 0;
}

static void *thread_main(void *p)
{
        unsigned t = (unsigned)(uintptr_t)p;

        for (uint64_t i = 0; records_per_thread == 0 || i < records_per_thread; i++) {
                int r = append_one(t, i);

                if (r < 0) {
                        if (!first_error)
                                first_error = r;
                        break;
                }
        }
        return NULL;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "state-dir", required_argument, NULL, 'd' },
                { "threads", required_argument, NULL, 't' },
                { "records", required_argument, NULL, 'n' },
                { "seal-every", required_argument, NULL, 'e' },
                { "seal-usec", required_argument, NULL, 'u' },
                { "no-close", no_argument, NULL, 'N' },
                { "quiet", no_argument, NULL, 'q' },
                { "story", no_argument, NULL, 's' },
                { "copy", required_argument, NULL, 'c' },
                { "syslog-socket", required_argument, NULL, 'S' },
                {},
        };
        AuditOptions o = { .host = "testhost", .copy = AUDIT_COPY_NONE };
        uint64_t threads = 4, v, seq;
        bool close_it = true;
        pthread_t th[1024];
        char hash[AUDIT_HASH_HEX_LEN + 1];
        int c, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        o.state_dir = optarg;
                        break;
                case 't':
                        if (parse_u64(optarg, 1024, &threads) < 0 || threads == 0)
                                return 64;
                        break;
                case 'n':
                        if (parse_u64(optarg, UINT64_MAX, &records_per_thread) < 0)
                                return 64;
                        break;
                case 'e':
                        if (parse_u64(optarg, UINT64_MAX, &v) < 0)
                                return 64;
                        o.seal_every_records = v;
                        break;
                case 'u':
                        if (parse_u64(optarg, UINT64_MAX, &v) < 0)
                                return 64;
                        o.seal_every_usec = v;
                        break;
                case 'N':
                        close_it = false;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 's':
                        story = true;
                        break;
                case 'c':
                        o.copy = streq(optarg, "auto")     ? AUDIT_COPY_AUTO
                                 : streq(optarg, "syslog") ? AUDIT_COPY_SYSLOG
                                                           : AUDIT_COPY_NONE;
                        break;
                case 'S':
                        o.syslog_socket = optarg;
                        break;
                default:
                        return 64;
                }
        }
        if (!o.state_dir) {
                fprintf(stderr, "audit-writer: --state-dir is required\n");
                return 64;
        }
        r = audit_open(&o, &writer);
        if (r < 0) {
                fprintf(stderr, "audit-writer: audit_open: %s\n", strerror(-r));
                return 2;
        }
        say("opened\n");
        for (uint64_t t = 0; t < threads; t++)
                if (pthread_create(&th[t], NULL, thread_main, (void *)(uintptr_t)t) != 0)
                        return 2;
        for (uint64_t t = 0; t < threads; t++)
                pthread_join(th[t], NULL);
        audit_head(writer, &seq, hash);
        say("head %llu:%s\n", (unsigned long long)seq, hash);
        if (!close_it)
                _exit(first_error ? 3 : 0);
        r = audit_close(writer);
        if (r < 0 || first_error) {
                fprintf(stderr, "audit-writer: %s\n", strerror(-(r < 0 ? r : first_error)));
                return 3;
        }
        say("closed\n");
        return 0;
}
