/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The approved plan against what the execution did (the recorder's
 * PlanResult). A deviation is an effect the execution had that the plan did
 * not show: a file written or deleted, a connection or datagram to a host
 * and port, a secret opened, a daemon contacted. Effects the plan had and
 * the execution did not are not deviations (a command may do less).
 *
 * The recorder sees calls, the plan sees end states, so transient files
 * are reconciled first: a file the execution created and then renamed away
 * or deleted (sed -i's temporary, a lock file) left nothing, and a rename
 * is checked as a write of its target and, unless its source was one of
 * those transient files, a deletion of its source.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"
#include "plan/plan-internal.h"

static bool path_under(const char *path, const char *dir)
{
        size_t n = strlen(dir);

        if (n == 1 && dir[0] == '/')
                return true;
        return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* Did the plan write path (create, modify, or rename onto it)? */
static bool plan_wrote(const PlanResult *p, const char *path)
{
        for (size_t i = 0; i < p->n_files; i++) {
                const PlanFile *f = &p->files[i];

                if (f->change != PLAN_FILE_DELETED && f->path && streq(f->path, path))
                        return true;
        }
        return false;
}

/* Did the plan remove path (deleted it or a directory above it, or renamed it away)? */
static bool plan_removed(const PlanResult *p, const char *path)
{
        for (size_t i = 0; i < p->n_files; i++) {
                const PlanFile *f = &p->files[i];

                if (f->change == PLAN_FILE_DELETED && f->path &&
                    (streq(f->path, path) || (f->type == 'd' && path_under(path, f->path))))
                        return true;
                if (f->change == PLAN_FILE_RENAMED && f->renamed_from &&
                    (streq(f->renamed_from, path) || path_under(path, f->renamed_from)))
                        return true;
        }
        return false;
}

/* Was path created by the execution before index i, and not there before it began? */
static bool created_before(const PlanResult *o, size_t i, const char *path)
{
        for (size_t k = 0; k < i; k++) {
                const PlanFile *f = &o->files[k];

                if (f->path && streq(f->path, path) &&
                    (f->change == PLAN_FILE_CREATED || f->change == PLAN_FILE_RENAMED))
                        return true;
        }
        return false;
}

/* Is the file at observed index i gone again by the end (renamed away or deleted later)? */
static bool gone_later(const PlanResult *o, size_t i, const char *path)
{
        for (size_t k = i + 1; k < o->n_files; k++) {
                const PlanFile *f = &o->files[k];

                if (f->change == PLAN_FILE_DELETED && f->path &&
                    (streq(f->path, path) || path_under(path, f->path)))
                        return true;
                if (f->change == PLAN_FILE_RENAMED && f->renamed_from &&
                    streq(f->renamed_from, path))
                        return true;
        }
        return false;
}

static int add_line(char ***l, size_t *n, const char *fmt, ...) _printf_(3, 4);
static int add_line(char ***l, size_t *n, const char *fmt, ...)
{
        char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (strv_contains(*l, s)) {
                free(s);
                return 0;
        }
        r = strv_consume(l, s);
        if (r < 0)
                return r;
        (*n)++;
        return 0;
}

static int compare_files(const PlanResult *a, const PlanResult *o, char ***l, size_t *n)
{
        int r = 0;

        for (size_t i = 0; i < o->n_files && r >= 0; i++) {
                const PlanFile *f = &o->files[i];

                if (!f->path)
                        continue;
                switch (f->change) {
                case PLAN_FILE_CREATED:
                case PLAN_FILE_MODIFIED:
                        if (f->change == PLAN_FILE_CREATED && gone_later(o, i, f->path))
                                break; /* a temporary: nothing left */
                        if (!plan_wrote(a, f->path))
                                r = add_line(l, n, "%s %s (not in the plan)",
                                             f->type == 'd' ? "created directory" : "wrote",
                                             f->path);
                        break;
                case PLAN_FILE_RENAMED:
                        if (!gone_later(o, i, f->path) && !plan_wrote(a, f->path))
                                r = add_line(l, n, "wrote %s (renamed from %s; not in the plan)",
                                             f->path, f->renamed_from ? f->renamed_from : "?");
                        if (r >= 0 && f->renamed_from && !created_before(o, i, f->renamed_from) &&
                            !plan_removed(a, f->renamed_from))
                                r = add_line(l, n, "deleted %s (renamed to %s; not in the plan)",
                                             f->renamed_from, f->path);
                        break;
                case PLAN_FILE_DELETED:
                        if (!created_before(o, i, f->path) && !plan_removed(a, f->path))
                                r = add_line(l, n, "deleted %s (not in the plan)", f->path);
                        break;
                }
        }
        return r;
}

static bool plan_has_net(const PlanResult *a, const PlanNet *x)
{
        for (size_t i = 0; i < a->n_net; i++) {
                const PlanNet *p = &a->net[i];

                if (p->family == AF_UNIX || x->family == AF_UNIX) {
                        if (p->family == x->family && p->address && x->address &&
                            streq(p->address, x->address))
                                return true;
                        continue;
                }
                if (p->port != x->port)
                        continue;
                if (p->address && x->address && streq(p->address, x->address))
                        return true;
                if (p->host && x->host && streq(p->host, x->host))
                        return true;
        }
        return false;
}

static int compare_net(const PlanResult *a, const PlanResult *o, char ***l, size_t *n)
{
        for (size_t i = 0; i < o->n_net; i++) {
                const PlanNet *x = &o->net[i];
                const char *verb = x->kind == PLAN_NET_CONNECT ? "connected to" : "sent to";
                int r;

                if (plan_has_net(a, x))
                        continue;
                if (x->family == AF_UNIX)
                        r = add_line(l, n, "%s %s (not in the plan)", verb,
                                     x->address ? x->address : "?");
                else if (x->host)
                        r = add_line(l, n, "%s %s:%u (%s) (not in the plan)", verb, x->host,
                                     x->port, x->address ? x->address : "?");
                else
                        r = add_line(l, n, "%s %s:%u (not in the plan)", verb,
                                     x->address ? x->address : "?", x->port);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int compare_secrets(const PlanResult *a, const PlanResult *o, char ***l, size_t *n)
{
        for (size_t i = 0; i < o->n_secrets; i++) {
                const PlanSecretAccess *x = &o->secrets[i];
                bool found = false;
                int r;

                if (!x->path)
                        continue;
                for (size_t k = 0; k < a->n_secrets && !found; k++)
                        found = a->secrets[k].path && streq(a->secrets[k].path, x->path) &&
                                (!x->write || a->secrets[k].write);
                if (found)
                        continue;
                r = add_line(l, n, "%s secret %s (not in the plan)", x->write ? "wrote" : "read",
                             x->path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int compare_contacts(const PlanResult *a, const PlanResult *o, char ***l, size_t *n)
{
        for (size_t i = 0; i < o->n_contacts; i++) {
                const PlanContact *x = &o->contacts[i];
                bool found = false;
                int r;

                if (!x->daemon)
                        continue;
                for (size_t k = 0; k < a->n_contacts && !found; k++)
                        found = a->contacts[k].daemon && streq(a->contacts[k].daemon, x->daemon) &&
                                (!x->meaning || !a->contacts[k].meaning ||
                                 streq(a->contacts[k].meaning, x->meaning));
                if (found)
                        continue;
                if (x->meaning)
                        r = add_line(l, n, "contacted %s: %s (not in the plan)", x->daemon,
                                     x->meaning);
                else
                        r = add_line(l, n, "contacted %s (not in the plan)", x->daemon);
                if (r < 0)
                        return r;
        }
        return 0;
}

int plan_compare(const PlanResult *approved, const PlanResult *observed, char ***ret)
{
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        if (!approved || !observed || !ret)
                return -EINVAL;
        r = compare_secrets(approved, observed, &l, &n);
        if (r >= 0)
                r = compare_net(approved, observed, &l, &n);
        if (r >= 0)
                r = compare_contacts(approved, observed, &l, &n);
        if (r >= 0)
                r = compare_files(approved, observed, &l, &n);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return (int)n;
}
