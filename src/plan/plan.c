/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * plan_run(): the parent side of a plan. It prepares everything that needs
 * the host's databases (groups, secret globs, the inventory's addresses)
 * before forking, lets the snapshot child (snapshot.c) build the snapshot,
 * starts the supervisor (supervisor.c) on the child's root once it is
 * ready, collects the command's output and the child's file effects, and
 * assembles the PlanResult: JSON, printing, digest, policy view.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/hash.h"
#include "common/util.h"
#include "plan/plan-internal.h"

#define PLAN_EFFECTS_MAX (256ULL * 1024 * 1024) /* the child's JSON */

static void json_decref_p(json_t **j)
{
        if (*j)
                json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_decref_p)

/* The supervisor's thread appends while the main thread may read: one lock. */
static pthread_mutex_t result_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- building ---- */

static void plan_file_done(PlanFile *f)
{
        free(f->path);
        free(f->renamed_from);
        free(f->link_target);
        free(f->diff);
        free(f->summary);
        free(f->secret_content);
}

PlanResult *plan_result_free(PlanResult *r)
{
        if (!r)
                return NULL;
        strv_free(r->argv);
        strv_free(r->envp);
        free(r->cwd);
        free(r->host);
        strv_free(r->fidelity_reasons);
        if (r->output)
                explicit_wipe(r->output, r->output_size);
        free(r->output);
        for (size_t i = 0; i < r->n_files; i++)
                plan_file_done(&r->files[i]);
        free(r->files);
        for (size_t i = 0; i < r->n_secrets; i++) {
                free(r->secrets[i].path);
                free(r->secrets[i].program);
        }
        free(r->secrets);
        for (size_t i = 0; i < r->n_net; i++) {
                free(r->net[i].address);
                free(r->net[i].host);
                free(r->net[i].environment);
                free(r->net[i].program);
        }
        free(r->net);
        for (size_t i = 0; i < r->n_execs; i++) {
                strv_free(r->execs[i].argv);
                free(r->execs[i].path);
        }
        free(r->execs);
        for (size_t i = 0; i < r->n_signals; i++)
                free(r->signals[i].program);
        free(r->signals);
        for (size_t i = 0; i < r->n_contacts; i++) {
                free(r->contacts[i].daemon);
                free(r->contacts[i].meaning);
                free(r->contacts[i].evidence);
        }
        free(r->contacts);
        free(r);
        return NULL;
}

/*
 * Grows an array by one element (zeroed); returns it or NULL. The capacity
 * is the next power of two, so appending n elements costs O(n).
 */
static void *grow(void **array, size_t *n, size_t size)
{
        char *t = *array;

        if (*n == 0 || (*n & (*n - 1)) == 0) {
                t = reallocarray(*array, *n ? *n * 2 : 1, size);
                if (!t)
                        return NULL;
        }
        *array = t;
        memset(t + *n * size, 0, size);
        return t + (*n)++ * size;
}

static int dup_or_null(const char *s, char **ret)
{
        *ret = NULL;
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int plan_result_add_file(PlanResult *r, const PlanFile *f)
{
        PlanFile *n;

        pthread_mutex_lock(&result_lock);
        n = grow((void **)&r->files, &r->n_files, sizeof *n);
        if (n)
                *n = *f; /* takes the strings */
        pthread_mutex_unlock(&result_lock);
        if (!n) {
                plan_file_done((PlanFile *)f);
                return -ENOMEM;
        }
        return 0;
}

int plan_result_add_secret(PlanResult *r, const char *path, const char *program, bool write)
{
        char *p = NULL, *g = NULL;
        PlanSecretAccess *s;
        int k = 0;

        if (!path)
                return -EINVAL;
        if (dup_or_null(path, &p) < 0 || dup_or_null(program, &g) < 0) {
                free(p);
                return -ENOMEM;
        }
        pthread_mutex_lock(&result_lock);
        /* one entry per secret and kind of open: a loop reading it 1000 times is one read */
        for (size_t i = 0; i < r->n_secrets; i++)
                if (streq(r->secrets[i].path, path) && r->secrets[i].write == write) {
                        k = 1;
                        break;
                }
        if (k == 0) {
                s = grow((void **)&r->secrets, &r->n_secrets, sizeof *s);
                if (s) {
                        s->path = TAKE_PTR(p);
                        s->program = TAKE_PTR(g);
                        s->write = write;
                } else
                        k = -ENOMEM;
        }
        pthread_mutex_unlock(&result_lock);
        free(p);
        free(g);
        return k < 0 ? k : 0;
}

int plan_result_add_net(PlanResult *r, const PlanNet *n)
{
        PlanNet c = *n, *t;

        c.address = c.host = c.environment = c.program = NULL;
        if (dup_or_null(n->address, &c.address) < 0 || dup_or_null(n->host, &c.host) < 0 ||
            dup_or_null(n->environment, &c.environment) < 0 ||
            dup_or_null(n->program, &c.program) < 0)
                goto fail;
        pthread_mutex_lock(&result_lock);
        t = grow((void **)&r->net, &r->n_net, sizeof *t);
        if (t)
                *t = c;
        pthread_mutex_unlock(&result_lock);
        if (t)
                return 0;
fail:
        free(c.address);
        free(c.host);
        free(c.environment);
        free(c.program);
        return -ENOMEM;
}

int plan_result_add_exec(PlanResult *r, char *const *argv, const char *path)
{
        _cleanup_strv_free_ char **a = NULL;
        _cleanup_free_ char *p = NULL;
        PlanExec *e;

        a = argv ? strv_copy(argv) : calloc(1, sizeof(char *));
        if (!a || dup_or_null(path, &p) < 0)
                return -ENOMEM;
        pthread_mutex_lock(&result_lock);
        e = grow((void **)&r->execs, &r->n_execs, sizeof *e);
        if (e) {
                e->argv = TAKE_PTR(a);
                e->path = TAKE_PTR(p);
        }
        pthread_mutex_unlock(&result_lock);
        return e ? 0 : -ENOMEM;
}

int plan_result_add_signal(PlanResult *r, int sig, pid_t target, const char *program, bool blocked)
{
        _cleanup_free_ char *p = NULL;
        PlanSignal *s;

        if (dup_or_null(program, &p) < 0)
                return -ENOMEM;
        pthread_mutex_lock(&result_lock);
        s = grow((void **)&r->signals, &r->n_signals, sizeof *s);
        if (s)
                *s = (PlanSignal){
                        .sig = sig, .target = target, .program = TAKE_PTR(p), .blocked = blocked
                };
        pthread_mutex_unlock(&result_lock);
        return s ? 0 : -ENOMEM;
}

int plan_result_add_contact(PlanResult *r, const char *daemon, const char *meaning,
                            const char *evidence, bool blocked)
{
        _cleanup_free_ char *d = NULL, *m = NULL, *e = NULL;
        PlanContact *c;

        if (!daemon)
                return -EINVAL;
        if (dup_or_null(daemon, &d) < 0 || dup_or_null(meaning, &m) < 0 ||
            dup_or_null(evidence, &e) < 0)
                return -ENOMEM;
        pthread_mutex_lock(&result_lock);
        c = grow((void **)&r->contacts, &r->n_contacts, sizeof *c);
        if (c)
                *c = (PlanContact){ .daemon = TAKE_PTR(d),
                                    .meaning = TAKE_PTR(m),
                                    .evidence = TAKE_PTR(e),
                                    .blocked = blocked };
        pthread_mutex_unlock(&result_lock);
        return c ? 0 : -ENOMEM;
}

int plan_result_partial(PlanResult *r, const char *reason)
{
        int k = 0;

        if (!reason)
                return -EINVAL;
        pthread_mutex_lock(&result_lock);
        r->complete = false;
        if (!strv_contains(r->fidelity_reasons, reason))
                k = strv_extend(&r->fidelity_reasons, reason);
        pthread_mutex_unlock(&result_lock);
        return k;
}

/* ---- JSON ---- */

/* JSON strings must be UTF-8: invalid bytes become U+FFFD (display only). */
static json_t *jstr(const char *s)
{
        json_t *j;
        size_t len, n = 0;
        _cleanup_free_ char *fixed = NULL;

        if (!s)
                return json_null();
        len = strlen(s);
        j = json_stringn(s, len);
        if (j)
                return j;
        fixed = malloc(len * 3 + 1);
        if (!fixed)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p;) {
                size_t k = 1;
                bool ok = false;

                if (*p < 0x80)
                        ok = true;
                else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2)
                        k = 2;
                else if ((*p & 0xf0) == 0xe0)
                        k = 3;
                else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4)
                        k = 4;
                if (!ok && k > 1) {
                        ok = true;
                        for (size_t i = 1; i < k; i++)
                                if ((p[i] & 0xc0) != 0x80)
                                        ok = false;
                        if (ok) {
                                _cleanup_json_ json_t *t = json_stringn((const char *)p, k);

                                ok = t != NULL;
                        }
                }
                if (ok) {
                        memcpy(fixed + n, p, k);
                        n += k;
                        p += k;
                } else {
                        memcpy(fixed + n, "\xef\xbf\xbd", 3);
                        n += 3;
                        p++;
                }
        }
        return json_stringn(fixed, n);
}

/* Same for a buffer that may hold NULs (the command's output). */
static json_t *jbuf(const char *s, size_t len)
{
        json_t *j = json_stringn(s, len);
        _cleanup_free_ char *copy = NULL;

        if (j)
                return j;
        copy = malloc(len + 1);
        if (!copy)
                return NULL;
        for (size_t i = 0; i < len; i++)
                copy[i] = s[i] ? s[i] : ' ';
        copy[len] = '\0';
        return jstr(copy);
}

static json_t *jstrv(char *const *l)
{
        json_t *a = json_array();

        if (!a)
                return NULL;
        STRV_FOREACH (s, l)
                if (json_array_append_new(a, jstr(*s)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static const char *change_names[] = {
        [PLAN_FILE_CREATED] = "created",
        [PLAN_FILE_MODIFIED] = "modified",
        [PLAN_FILE_DELETED] = "deleted",
        [PLAN_FILE_RENAMED] = "renamed",
};

static const char *family_name(int f)
{
        switch (f) {
        case AF_INET:
                return "inet";
        case AF_INET6:
                return "inet6";
        case AF_UNIX:
                return "unix";
        case AF_NETLINK:
                return "netlink";
        default:
                return NULL;
        }
}

static const char *socktype_name(int t)
{
        switch (t) {
        case SOCK_STREAM:
                return "stream";
        case SOCK_DGRAM:
                return "dgram";
        case SOCK_SEQPACKET:
                return "seqpacket";
        case SOCK_RAW:
                return "raw";
        default:
                return NULL;
        }
}

/* Sets key to value, failing on a NULL value (allocation failure). */
static int set(json_t *o, const char *key, json_t *v)
{
        return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *file_to_json(const PlanFile *f)
{
        _cleanup_json_ json_t *o = json_object();
        bool before = f->change != PLAN_FILE_CREATED, after = f->change != PLAN_FILE_DELETED;
        char t[2] = { f->type ? f->type : '?', 0 };

        if (!o || set(o, "path", jstr(f->path)) < 0 ||
            set(o, "change", json_string(change_names[f->change])) < 0 ||
            set(o, "type", json_string(t)) < 0)
                return NULL;
        if (f->renamed_from && set(o, "renamed_from", jstr(f->renamed_from)) < 0)
                return NULL;
        if (f->change == PLAN_FILE_MODIFIED || f->change == PLAN_FILE_RENAMED)
                if (set(o, "content_changed", json_boolean(f->content_changed)) < 0 ||
                    set(o, "mode_changed", json_boolean(f->mode_changed)) < 0 ||
                    set(o, "owner_changed", json_boolean(f->owner_changed)) < 0)
                        return NULL;
        if (before && (set(o, "old_mode", json_integer(f->old_mode)) < 0 ||
                       set(o, "old_uid", json_integer(f->old_uid)) < 0 ||
                       set(o, "old_gid", json_integer(f->old_gid)) < 0 ||
                       set(o, "old_size", json_integer((json_int_t)f->old_size)) < 0))
                return NULL;
        if (after && (set(o, "new_mode", json_integer(f->new_mode)) < 0 ||
                      set(o, "new_uid", json_integer(f->new_uid)) < 0 ||
                      set(o, "new_gid", json_integer(f->new_gid)) < 0 ||
                      set(o, "new_size", json_integer((json_int_t)f->new_size)) < 0))
                return NULL;
        if (f->link_target && set(o, "link_target", jstr(f->link_target)) < 0)
                return NULL;
        if (f->diff && set(o, "diff", jstr(f->diff)) < 0)
                return NULL;
        if (f->diff_truncated && set(o, "diff_truncated", json_true()) < 0)
                return NULL;
        if (f->summary && set(o, "summary", jstr(f->summary)) < 0)
                return NULL;
        if (f->secret_content && set(o, "secret_content", jstr(f->secret_content)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* Everything but duration and digest: what the digest covers. */
static json_t *plan_to_json_core(const PlanResult *r)
{
        _cleanup_json_ json_t *o = json_object(), *files = json_array(), *secrets = json_array(),
                              *net = json_array(), *execs = json_array(), *signals = json_array(),
                              *contacts = json_array();

        if (!o || !files || !secrets || !net || !execs || !signals || !contacts)
                return NULL;
        if (set(o, "version", json_integer(1)) < 0 || set(o, "argv", jstrv(r->argv)) < 0 ||
            set(o, "envp", jstrv(r->envp)) < 0 || set(o, "cwd", jstr(r->cwd)) < 0 ||
            set(o, "uid", json_integer(r->uid)) < 0 || set(o, "gid", json_integer(r->gid)) < 0 ||
            set(o, "host", jstr(r->host)) < 0 ||
            set(o, "complete", json_boolean(r->complete)) < 0 ||
            set(o, "fidelity_reasons", jstrv(r->fidelity_reasons)) < 0 ||
            set(o, "exit_status", json_integer(r->exit_status)) < 0 ||
            set(o, "timed_out", json_boolean(r->timed_out)) < 0 ||
            set(o, "output", r->output ? jbuf(r->output, r->output_size) : json_null()) < 0 ||
            set(o, "output_size", json_integer((json_int_t)r->output_size)) < 0 ||
            set(o, "output_truncated", json_boolean(r->output_truncated)) < 0 ||
            set(o, "output_withheld", json_boolean(r->output_withheld)) < 0)
                return NULL;
        for (size_t i = 0; i < r->n_files; i++)
                if (json_array_append_new(files, file_to_json(&r->files[i])) < 0)
                        return NULL;
        for (size_t i = 0; i < r->n_secrets; i++)
                if (json_array_append_new(secrets, json_pack("{s:o, s:o, s:b}", "path",
                                                             jstr(r->secrets[i].path), "program",
                                                             jstr(r->secrets[i].program), "write",
                                                             r->secrets[i].write)) < 0)
                        return NULL;
        for (size_t i = 0; i < r->n_net; i++) {
                const PlanNet *n = &r->net[i];
                const char *fam = family_name(n->family), *st = socktype_name(n->socktype);
                json_t *e = json_pack("{s:s, s:o, s:o, s:o, s:i, s:o, s:o, s:o, s:b}", "kind",
                                      n->kind == PLAN_NET_SEND ? "send" : "connect", "family",
                                      fam ? json_string(fam) : json_integer(n->family), "socktype",
                                      st ? json_string(st) : json_integer(n->socktype), "address",
                                      jstr(n->address), "port", (int)n->port, "host", jstr(n->host),
                                      "environment", jstr(n->environment), "program",
                                      jstr(n->program), "blocked", n->blocked);

                if (json_array_append_new(net, e) < 0)
                        return NULL;
        }
        for (size_t i = 0; i < r->n_execs; i++)
                if (json_array_append_new(execs,
                                          json_pack("{s:o, s:o}", "argv", jstrv(r->execs[i].argv),
                                                    "path", jstr(r->execs[i].path))) < 0)
                        return NULL;
        for (size_t i = 0; i < r->n_signals; i++)
                if (json_array_append_new(signals, json_pack("{s:i, s:i, s:o, s:b}", "signal",
                                                             r->signals[i].sig, "target",
                                                             (int)r->signals[i].target, "program",
                                                             jstr(r->signals[i].program), "blocked",
                                                             r->signals[i].blocked)) < 0)
                        return NULL;
        for (size_t i = 0; i < r->n_contacts; i++)
                if (json_array_append_new(contacts,
                                          json_pack("{s:o, s:o, s:o, s:b}", "daemon",
                                                    jstr(r->contacts[i].daemon), "meaning",
                                                    jstr(r->contacts[i].meaning), "evidence",
                                                    jstr(r->contacts[i].evidence), "blocked",
                                                    r->contacts[i].blocked)) < 0)
                        return NULL;
        if (set(o, "files", TAKE_PTR(files)) < 0 || set(o, "secrets", TAKE_PTR(secrets)) < 0 ||
            set(o, "network", TAKE_PTR(net)) < 0 || set(o, "execs", TAKE_PTR(execs)) < 0 ||
            set(o, "signals", TAKE_PTR(signals)) < 0 || set(o, "contacts", TAKE_PTR(contacts)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

json_t *plan_result_to_json(const PlanResult *r)
{
        json_t *o;

        if (!r)
                return NULL;
        pthread_mutex_lock(&result_lock);
        o = plan_to_json_core(r);
        pthread_mutex_unlock(&result_lock);
        if (!o)
                return NULL;
        if (set(o, "duration_usec", json_integer((json_int_t)r->duration_usec)) < 0 ||
            set(o, "digest", json_string(r->digest)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* sha256 of the canonical JSON (sorted keys, compact) of everything but duration. */
static int plan_digest(PlanResult *r)
{
        _cleanup_json_ json_t *o = NULL;
        _cleanup_free_ char *s = NULL;

        pthread_mutex_lock(&result_lock);
        o = plan_to_json_core(r);
        pthread_mutex_unlock(&result_lock);
        if (!o)
                return -ENOMEM;
        s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!s)
                return -ENOMEM;
        return sha256_hex(s, strlen(s), r->digest);
}

/* Strict reading: every key known, every type right. */
typedef struct {
        const json_t *o;
        int error;
} Reader;

static const json_t *rd(Reader *R, const char *key, json_type type, bool nullable)
{
        const json_t *v = json_object_get(R->o, key);

        if (!v) {
                R->error = -EINVAL;
                return NULL;
        }
        if (nullable && json_is_null(v))
                return NULL;
        if (json_typeof(v) != type && !(type == JSON_TRUE && json_is_boolean(v)))
                R->error = -EINVAL;
        return R->error < 0 ? NULL : v;
}

static const json_t *rd_opt(Reader *R, const char *key, json_type type)
{
        const json_t *v = json_object_get(R->o, key);

        if (!v)
                return NULL;
        if (json_typeof(v) != type && !(type == JSON_TRUE && json_is_boolean(v))) {
                R->error = -EINVAL;
                return NULL;
        }
        return v;
}

static char *rd_str(Reader *R, const char *key, bool nullable, bool optional)
{
        const json_t *v =
                optional ? rd_opt(R, key, JSON_STRING) : rd(R, key, JSON_STRING, nullable);
        char *s;

        if (optional && v && json_is_null(v))
                return NULL;
        if (!v)
                return NULL;
        s = strndup(json_string_value(v), json_string_length(v));
        if (!s)
                R->error = -ENOMEM;
        return s;
}

static int64_t rd_int(Reader *R, const char *key, int64_t min, int64_t max, bool optional)
{
        const json_t *v = optional ? rd_opt(R, key, JSON_INTEGER) : rd(R, key, JSON_INTEGER, false);
        json_int_t i;

        if (!v)
                return 0;
        i = json_integer_value(v);
        if (i < min || i > max) {
                R->error = -EINVAL;
                return 0;
        }
        return i;
}

static bool rd_bool(Reader *R, const char *key, bool optional)
{
        const json_t *v = optional ? rd_opt(R, key, JSON_TRUE) : rd(R, key, JSON_TRUE, false);

        return v && json_is_true(v);
}

static char **rd_strv(Reader *R, const char *key, bool nullable)
{
        const json_t *a = rd(R, key, JSON_ARRAY, nullable), *v;
        _cleanup_strv_free_ char **l = NULL;
        size_t i;

        if (!a)
                return NULL;
        l = calloc(1, sizeof(char *));
        if (!l) {
                R->error = -ENOMEM;
                return NULL;
        }
        json_array_foreach(a, i, v)
        {
                if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
                        R->error = -EINVAL;
                        return NULL;
                }
                if (strv_extend(&l, json_string_value(v)) < 0) {
                        R->error = -ENOMEM;
                        return NULL;
                }
        }
        return TAKE_PTR(l);
}

/* Only these keys, nothing else. */
static bool keys_only(const json_t *o, const char *const *keys)
{
        const char *k;
        const json_t *v;

        json_object_foreach((json_t *)o, k, v)
        {
                bool known = false;

                for (const char *const *p = keys; *p; p++)
                        if (streq(*p, k))
                                known = true;
                if (!known)
                        return false;
        }
        return true;
}

static int file_from_json(const json_t *o, PlanFile *f)
{
        static const char *const keys[] = { "path",
                                            "change",
                                            "type",
                                            "renamed_from",
                                            "content_changed",
                                            "mode_changed",
                                            "owner_changed",
                                            "old_mode",
                                            "old_uid",
                                            "old_gid",
                                            "old_size",
                                            "new_mode",
                                            "new_uid",
                                            "new_gid",
                                            "new_size",
                                            "link_target",
                                            "diff",
                                            "diff_truncated",
                                            "summary",
                                            "secret_content",
                                            NULL };
        Reader R = { .o = o };
        _cleanup_free_ char *change = NULL, *type = NULL;
        bool found = false;

        if (!json_is_object(o) || !keys_only(o, keys))
                return -EINVAL;
        *f = (PlanFile){};
        f->path = rd_str(&R, "path", false, false);
        change = rd_str(&R, "change", false, false);
        type = rd_str(&R, "type", false, false);
        f->renamed_from = rd_str(&R, "renamed_from", false, true);
        f->content_changed = rd_bool(&R, "content_changed", true);
        f->mode_changed = rd_bool(&R, "mode_changed", true);
        f->owner_changed = rd_bool(&R, "owner_changed", true);
        f->old_mode = (mode_t)rd_int(&R, "old_mode", 0, UINT32_MAX, true);
        f->old_uid = (uid_t)rd_int(&R, "old_uid", 0, UINT32_MAX, true);
        f->old_gid = (gid_t)rd_int(&R, "old_gid", 0, UINT32_MAX, true);
        f->old_size = (uint64_t)rd_int(&R, "old_size", 0, INT64_MAX, true);
        f->new_mode = (mode_t)rd_int(&R, "new_mode", 0, UINT32_MAX, true);
        f->new_uid = (uid_t)rd_int(&R, "new_uid", 0, UINT32_MAX, true);
        f->new_gid = (gid_t)rd_int(&R, "new_gid", 0, UINT32_MAX, true);
        f->new_size = (uint64_t)rd_int(&R, "new_size", 0, INT64_MAX, true);
        f->link_target = rd_str(&R, "link_target", false, true);
        f->diff = rd_str(&R, "diff", false, true);
        f->diff_truncated = rd_bool(&R, "diff_truncated", true);
        f->summary = rd_str(&R, "summary", false, true);
        f->secret_content = rd_str(&R, "secret_content", false, true);
        if (R.error == 0 && change)
                for (size_t i = 0; i < ELEMENTSOF(change_names); i++)
                        if (streq(change, change_names[i])) {
                                f->change = (PlanFileChange)i;
                                found = true;
                        }
        if (R.error == 0 &&
            (!found || !type || strlen(type) != 1 || !strchr("fdlcbps?", type[0]) ||
             f->path[0] != '/' || (f->change == PLAN_FILE_RENAMED) != !!f->renamed_from))
                R.error = -EINVAL;
        if (R.error < 0) {
                plan_file_done(f);
                *f = (PlanFile){};
                return R.error;
        }
        f->type = type[0];
        return 0;
}

typedef struct {
        const char *name;
        int value;
} NamedInt;

/* A number in [0, 1024), or one of the names in t. */
static int named_int_from_json(const json_t *v, const NamedInt *t, size_t n, int *ret)
{
        if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 1024) {
                *ret = (int)json_integer_value(v);
                return 0;
        }
        if (json_is_string(v))
                for (size_t i = 0; i < n; i++)
                        if (streq(json_string_value(v), t[i].name)) {
                                *ret = t[i].value;
                                return 0;
                        }
        return -EINVAL;
}

static int family_from_json(const json_t *v, int *ret)
{
        static const NamedInt t[] = { { "inet", AF_INET },
                                      { "inet6", AF_INET6 },
                                      { "unix", AF_UNIX },
                                      { "netlink", AF_NETLINK } };

        return named_int_from_json(v, t, ELEMENTSOF(t), ret);
}

static int socktype_from_json(const json_t *v, int *ret)
{
        static const NamedInt t[] = { { "stream", SOCK_STREAM },
                                      { "dgram", SOCK_DGRAM },
                                      { "seqpacket", SOCK_SEQPACKET },
                                      { "raw", SOCK_RAW } };

        return named_int_from_json(v, t, ELEMENTSOF(t), ret);
}

int plan_result_from_json(const json_t *j, PlanResult **ret)
{
        static const char *const keys[] = { "version",
                                            "argv",
                                            "envp",
                                            "cwd",
                                            "uid",
                                            "gid",
                                            "host",
                                            "complete",
                                            "fidelity_reasons",
                                            "exit_status",
                                            "timed_out",
                                            "output",
                                            "output_size",
                                            "output_truncated",
                                            "output_withheld",
                                            "files",
                                            "secrets",
                                            "network",
                                            "execs",
                                            "signals",
                                            "contacts",
                                            "duration_usec",
                                            "digest",
                                            NULL };
        _cleanup_(plan_result_freep) PlanResult *r = NULL;
        Reader R = { .o = j };
        const json_t *a, *v, *out;
        _cleanup_free_ char *digest = NULL;
        size_t i, output_size;

        if (!json_is_object(j) || !keys_only(j, keys))
                return -EINVAL;
        if (rd_int(&R, "version", 1, 1, false) != 1 || R.error < 0)
                return -EINVAL;
        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->argv = rd_strv(&R, "argv", false);
        r->envp = rd_strv(&R, "envp", false);
        r->cwd = rd_str(&R, "cwd", true, false);
        r->uid = (uid_t)rd_int(&R, "uid", 0, UINT32_MAX, false);
        r->gid = (gid_t)rd_int(&R, "gid", 0, UINT32_MAX, false);
        r->host = rd_str(&R, "host", true, false);
        r->complete = rd_bool(&R, "complete", false);
        r->fidelity_reasons = rd_strv(&R, "fidelity_reasons", false);
        r->exit_status = (int)rd_int(&R, "exit_status", INT32_MIN, INT32_MAX, false);
        r->timed_out = rd_bool(&R, "timed_out", false);
        out = rd(&R, "output", JSON_STRING, true);
        if (out) {
                r->output = malloc(json_string_length(out) + 1);
                if (!r->output)
                        return -ENOMEM;
                memcpy(r->output, json_string_value(out), json_string_length(out) + 1);
                /* what was allocated: plan_result_free() wipes this many bytes */
                r->output_size = json_string_length(out);
        }
        /*
         * The claimed size only once it agrees with the output: a larger one
         * made plan_result_free() wipe past the buffer (explicit_bzero is not
         * seen by ASan; libFuzzer found it as a corrupted heap, valgrind
         * showed where).
         */
        output_size = (size_t)rd_int(&R, "output_size", 0, INT64_MAX, false);
        r->output_truncated = rd_bool(&R, "output_truncated", false);
        r->output_withheld = rd_bool(&R, "output_withheld", false);
        r->duration_usec = (uint64_t)rd_int(&R, "duration_usec", 0, INT64_MAX, false);
        digest = rd_str(&R, "digest", false, false);
        if (R.error < 0)
                return R.error;
        if (!r->argv || !r->envp || !r->fidelity_reasons || !digest || strlen(digest) > 64 ||
            (out && json_string_length(out) != output_size))
                return -EINVAL;
        r->output_size = output_size;
        strcpy(r->digest, digest);

        a = rd(&R, "files", JSON_ARRAY, false);
        json_array_foreach(a, i, v)
        {
                PlanFile f;
                int k = file_from_json(v, &f);

                if (k < 0)
                        return k;
                k = plan_result_add_file(r, &f);
                if (k < 0)
                        return k;
        }
        a = rd(&R, "secrets", JSON_ARRAY, false);
        json_array_foreach(a, i, v)
        {
                static const char *const sk[] = { "path", "program", "write", NULL };
                Reader S = { .o = v };
                _cleanup_free_ char *path = NULL, *prog = NULL;
                bool w;

                if (!json_is_object(v) || !keys_only(v, sk))
                        return -EINVAL;
                path = rd_str(&S, "path", false, false);
                prog = rd_str(&S, "program", true, false);
                w = rd_bool(&S, "write", false);
                if (S.error < 0)
                        return S.error;
                if (plan_result_add_secret(r, path, prog, w) < 0)
                        return -ENOMEM;
        }
        a = rd(&R, "network", JSON_ARRAY, false);
        json_array_foreach(a, i, v)
        {
                static const char *const nk[] = { "kind",    "family", "socktype",    "address",
                                                  "port",    "host",   "environment", "program",
                                                  "blocked", NULL };
                Reader S = { .o = v };
                _cleanup_free_ char *kind = NULL;
                PlanNet n = {};
                int k;

                if (!json_is_object(v) || !keys_only(v, nk))
                        return -EINVAL;
                kind = rd_str(&S, "kind", false, false);
                n.address = rd_str(&S, "address", true, false);
                n.port = (uint16_t)rd_int(&S, "port", 0, UINT16_MAX, false);
                n.host = rd_str(&S, "host", true, false);
                n.environment = rd_str(&S, "environment", true, false);
                n.program = rd_str(&S, "program", true, false);
                n.blocked = rd_bool(&S, "blocked", false);
                k = S.error;
                if (k == 0 && (!kind || (!streq(kind, "connect") && !streq(kind, "send"))))
                        k = -EINVAL;
                if (k == 0)
                        n.kind = streq(kind, "send") ? PLAN_NET_SEND : PLAN_NET_CONNECT;
                if (k == 0)
                        k = family_from_json(json_object_get(v, "family"), &n.family);
                if (k == 0)
                        k = socktype_from_json(json_object_get(v, "socktype"), &n.socktype);
                if (k == 0)
                        k = plan_result_add_net(r, &n);
                free(n.address);
                free(n.host);
                free(n.environment);
                free(n.program);
                if (k < 0)
                        return k;
        }
        a = rd(&R, "execs", JSON_ARRAY, false);
        json_array_foreach(a, i, v)
        {
                static const char *const ek[] = { "argv", "path", NULL };
                Reader S = { .o = v };
                _cleanup_strv_free_ char **argv = NULL;
                _cleanup_free_ char *path = NULL;

                if (!json_is_object(v) || !keys_only(v, ek))
                        return -EINVAL;
                argv = rd_strv(&S, "argv", false);
                path = rd_str(&S, "path", true, false);
                if (S.error < 0)
                        return S.error;
                if (plan_result_add_exec(r, argv, path) < 0)
                        return -ENOMEM;
        }
        a = rd(&R, "signals", JSON_ARRAY, false);
        json_array_foreach(a, i, v)
        {
                static const char *const gk[] = { "signal", "target", "program", "blocked", NULL };
                Reader S = { .o = v };
                _cleanup_free_ char *prog = NULL;
                int sig;
                pid_t target;
                bool b;

                if (!json_is_object(v) || !keys_only(v, gk))
                        return -EINVAL;
                sig = (int)rd_int(&S, "signal", 0, 1024, false);
                target = (pid_t)rd_int(&S, "target", INT32_MIN, INT32_MAX, false);
                prog = rd_str(&S, "program", true, false);
                b = rd_bool(&S, "blocked", false);
                if (S.error < 0)
                        return S.error;
                if (plan_result_add_signal(r, sig, target, prog, b) < 0)
                        return -ENOMEM;
        }
        a = rd(&R, "contacts", JSON_ARRAY, false);
        json_array_foreach(a, i, v)
        {
                static const char *const ck[] = { "daemon", "meaning", "evidence", "blocked",
                                                  NULL };
                Reader S = { .o = v };
                _cleanup_free_ char *d = NULL, *m = NULL, *e = NULL;
                bool b;

                if (!json_is_object(v) || !keys_only(v, ck))
                        return -EINVAL;
                d = rd_str(&S, "daemon", false, false);
                m = rd_str(&S, "meaning", true, false);
                e = rd_str(&S, "evidence", true, false);
                b = rd_bool(&S, "blocked", false);
                if (S.error < 0)
                        return S.error;
                if (plan_result_add_contact(r, d, m, e, b) < 0)
                        return -ENOMEM;
        }
        if (R.error < 0)
                return R.error;
        *ret = TAKE_PTR(r);
        return 0;
}

/* ---- printing ---- */

static void put(FILE *f, const char *s)
{
        _cleanup_free_ char *e = escape_for_terminal(s ? s : "");

        fputs(e ? e : "?", f);
}

static const char *file_type_name(char t)
{
        switch (t) {
        case 'f':
                return "file";
        case 'd':
                return "directory";
        case 'l':
                return "symlink";
        case 'c':
                return "character device";
        case 'b':
                return "block device";
        case 'p':
                return "fifo";
        case 's':
                return "socket";
        default:
                return "entry";
        }
}

/* Multi-line text, escaped line by line and indented. */
static void put_lines(FILE *f, const char *text, size_t len, const char *indent)
{
        size_t start = 0;

        while (start < len) {
                const char *nl = memchr(text + start, '\n', len - start);
                size_t end = nl ? (size_t)(nl - text) : len;
                _cleanup_free_ char *line = strndup(text + start, end - start);

                fputs(indent, f);
                put(f, line);
                fputc('\n', f);
                start = end + 1;
        }
}

static void print_file(FILE *f, const PlanFile *p)
{
        fprintf(f, "  %s ", change_names[p->change]);
        if (p->change == PLAN_FILE_RENAMED) {
                put(f, p->renamed_from);
                fputs(" → ", f);
        }
        put(f, p->path);
        fprintf(f, " (%s", file_type_name(p->type));
        if (p->change == PLAN_FILE_CREATED)
                fprintf(f, ", mode %04o, owner %u:%u, %" PRIu64 " bytes", p->new_mode & 07777,
                        p->new_uid, p->new_gid, p->new_size);
        else if (p->change == PLAN_FILE_DELETED)
                fprintf(f, ", %" PRIu64 " bytes", p->old_size);
        else {
                if (p->content_changed && p->type != 'd')
                        fprintf(f, ", content %" PRIu64 " → %" PRIu64 " bytes", p->old_size,
                                p->new_size);
                if (p->mode_changed)
                        fprintf(f, ", mode %04o → %04o", p->old_mode & 07777, p->new_mode & 07777);
                if (p->owner_changed)
                        fprintf(f, ", owner %u:%u → %u:%u", p->old_uid, p->old_gid, p->new_uid,
                                p->new_gid);
        }
        fputs(")\n", f);
        if (p->link_target) {
                fputs("      link target: ", f);
                put(f, p->link_target);
                fputc('\n', f);
        }
        if (p->secret_content) {
                fputs("      HOLDS THE CONTENT OF SECRET ", f);
                put(f, p->secret_content);
                fputs(" (not shown)\n", f);
        }
        if (p->summary) {
                fputs("      ", f);
                put(f, p->summary);
                fputc('\n', f);
        }
        if (p->diff)
                put_lines(f, p->diff, strlen(p->diff), "      ");
        if (p->diff_truncated)
                fputs("      (diff cut: too large)\n", f);
}

void plan_result_print(FILE *f, const PlanResult *r)
{
        _cleanup_free_ char *cmd = argv_to_display(r->argv);

        fputs("Plan of: ", f);
        put(f, cmd);
        fputc('\n', f);
        fprintf(f, "  as uid %u gid %u in ", r->uid, r->gid);
        put(f, r->cwd ? r->cwd : "/");
        if (r->host) {
                fputs(", on host ", f);
                put(f, r->host);
        }
        fputc('\n', f);

        if (r->complete)
                fputs("Fidelity: complete (every effect was observed in the snapshot)\n", f);
        else {
                fputs("Fidelity: PARTIAL (what follows is intent, not all observed):\n", f);
                STRV_FOREACH (s, r->fidelity_reasons) {
                        fputs("  - ", f);
                        put(f, *s);
                        fputc('\n', f);
                }
        }
        if (r->timed_out)
                fputs("Exit: stopped after the timeout\n", f);
        else if (WIFEXITED(r->exit_status))
                fprintf(f, "Exit: status %d\n", WEXITSTATUS(r->exit_status));
        else if (WIFSIGNALED(r->exit_status))
                fprintf(f, "Exit: killed by signal %d\n", WTERMSIG(r->exit_status));

        fprintf(f, "Secrets read:%s\n", r->n_secrets ? "" : " none");
        for (size_t i = 0; i < r->n_secrets; i++) {
                fprintf(f, "  %s ", r->secrets[i].write ? "opened for writing" : "reads");
                put(f, r->secrets[i].path);
                if (r->secrets[i].program) {
                        fputs(" (by ", f);
                        put(f, r->secrets[i].program);
                        fputc(')', f);
                }
                fputc('\n', f);
        }
        for (size_t i = 0; i < r->n_files; i++)
                if (r->files[i].secret_content) {
                        fputs("  secret content of ", f);
                        put(f, r->files[i].secret_content);
                        fputs(" written to ", f);
                        put(f, r->files[i].path);
                        fputc('\n', f);
                }

        fprintf(f, "Network:%s\n", r->n_net ? "" : " none");
        for (size_t i = 0; i < r->n_net; i++) {
                const PlanNet *n = &r->net[i];
                const char *st = socktype_name(n->socktype);

                fprintf(f, "  %s ", n->kind == PLAN_NET_SEND ? "sends to" : "connects to");
                if (n->host) {
                        put(f, n->host);
                        fputs(" (", f);
                        put(f, n->address);
                        fputc(')', f);
                } else
                        put(f, n->address);
                if (n->family != AF_UNIX)
                        fprintf(f, " port %u", n->port);
                if (st)
                        fprintf(f, " %s", st);
                if (n->environment) {
                        fputs(", environment ", f);
                        put(f, n->environment);
                }
                if (!n->host && n->family != AF_UNIX)
                        fputs(", OUTSIDE THE INVENTORY", f);
                if (n->program) {
                        fputs(", by ", f);
                        put(f, n->program);
                }
                fputs(n->blocked ? " — refused by the plan (intent)\n" : "\n", f);
        }

        fprintf(f, "Daemons contacted:%s\n", r->n_contacts ? "" : " none");
        for (size_t i = 0; i < r->n_contacts; i++) {
                fputs("  ", f);
                put(f, r->contacts[i].daemon);
                if (r->contacts[i].meaning) {
                        fputs(": ", f);
                        put(f, r->contacts[i].meaning);
                }
                if (r->contacts[i].evidence) {
                        fputs(" (", f);
                        put(f, r->contacts[i].evidence);
                        fputc(')', f);
                }
                fputs(r->contacts[i].blocked ? " — refused by the plan (intent)\n" : "\n", f);
        }
        if (r->n_signals) {
                fputs("Signals:\n", f);
                for (size_t i = 0; i < r->n_signals; i++) {
                        fprintf(f, "  signal %d to pid %d", r->signals[i].sig,
                                (int)r->signals[i].target);
                        if (r->signals[i].program) {
                                fputs(" by ", f);
                                put(f, r->signals[i].program);
                        }
                        fputs(r->signals[i].blocked ? " — refused by the plan\n" : "\n", f);
                }
        }

        fprintf(f, "Files:%s\n", r->n_files ? "" : " no change");
        for (size_t i = 0; i < r->n_files; i++)
                print_file(f, &r->files[i]);

        fprintf(f, "Programs run:%s\n", r->n_execs ? "" : " none observed");
        for (size_t i = 0; i < r->n_execs; i++) {
                _cleanup_free_ char *line = argv_to_display(r->execs[i].argv);

                fputs("  ", f);
                put(f, line);
                if (r->execs[i].path && r->execs[i].argv && r->execs[i].argv[0] &&
                    !streq(r->execs[i].path, r->execs[i].argv[0])) {
                        fputs("  [", f);
                        put(f, r->execs[i].path);
                        fputc(']', f);
                }
                fputc('\n', f);
        }

        if (r->output_withheld)
                fputs("Output: withheld (the command read a secret)\n", f);
        else if (r->output && r->output_size) {
                fprintf(f, "Output (%zu bytes%s):\n", r->output_size,
                        r->output_truncated ? ", cut" : "");
                put_lines(f, r->output, r->output_size, "  | ");
        } else
                fputs("Output: none\n", f);
        fprintf(f, "Plan digest: %s\n", r->digest);
}

/* ---- the policy's view ---- */

void plan_policy_effects_done(PlanPolicyEffects *e)
{
        if (!e)
                return;
        free(e->secrets_read);
        free(e->secret_content_written);
        free(e->writes);
        free(e->deletes);
        free(e->contacts);
        free(e->connections);
        *e = (PlanPolicyEffects){};
}

int plan_policy_effects(const PlanResult *r, PlanPolicyEffects *ret)
{
        PlanPolicyEffects e = {};
        size_t ns = 0, nc = 0, nw = 0, nd = 0, nn = 0;

        e.secrets_read = calloc(r->n_secrets + 1, sizeof(char *));
        e.secret_content_written = calloc(r->n_files + 1, sizeof(char *));
        e.writes = calloc(r->n_files + 1, sizeof(char *));
        e.deletes = calloc(r->n_files * 2 + 1, sizeof(char *));
        e.contacts = calloc(r->n_contacts + 1, sizeof(char *));
        e.connections = calloc(r->n_net + 1, sizeof(PolicyConnection));
        if (!e.secrets_read || !e.secret_content_written || !e.writes || !e.deletes ||
            !e.contacts || !e.connections) {
                plan_policy_effects_done(&e);
                return -ENOMEM;
        }
        /* Any open of a secret counts: one opened for writing can be read too. */
        for (size_t i = 0; i < r->n_secrets; i++)
                e.secrets_read[ns++] = r->secrets[i].path;
        for (size_t i = 0; i < r->n_files; i++) {
                const PlanFile *f = &r->files[i];

                if (f->secret_content)
                        e.secret_content_written[nc++] = f->path;
                if (f->change == PLAN_FILE_DELETED)
                        e.deletes[nd++] = f->path;
                else
                        e.writes[nw++] = f->path;
                if (f->change == PLAN_FILE_RENAMED)
                        e.deletes[nd++] = f->renamed_from;
        }
        for (size_t i = 0; i < r->n_contacts; i++)
                e.contacts[i] = r->contacts[i].daemon;
        /* unix sockets are daemons on this host (contacts), not network connections */
        for (size_t i = 0; i < r->n_net; i++)
                if (r->net[i].family != AF_UNIX)
                        e.connections[nn++] = (PolicyConnection){ .host = r->net[i].host,
                                                                  .address = r->net[i].address,
                                                                  .port = r->net[i].port };
        e.effects = (PolicyEffects){
                .secrets_read = ns ? e.secrets_read : NULL,
                .secret_content_written = nc ? e.secret_content_written : NULL,
                .writes = nw ? e.writes : NULL,
                .deletes = nd ? e.deletes : NULL,
                .connections = nn ? e.connections : NULL,
                .n_connections = nn,
                .contacts = r->n_contacts ? e.contacts : NULL,
        };
        *ret = e;
        return 0;
}

/* ---- plan_run ---- */

static const char *const host_default_connect[] = { "ssh", "-T", "-o", "BatchMode=yes" };

/* The command as it would run: behind the host's connect prefix for a remote host. */
static int build_argv(const PlanOptions *o, char ***ret, char *err, size_t err_size)
{
        _cleanup_strv_free_ char **cmd = calloc(1, sizeof(char *));
        const PolicyHost *h;

        if (!cmd)
                return -ENOMEM;
        if (!o->host) {
                STRV_FOREACH (a, o->argv)
                        if (strv_extend(&cmd, *a) < 0)
                                return -ENOMEM;
                *ret = TAKE_PTR(cmd);
                return 0;
        }
        h = o->policy ? policy_find_host(o->policy, o->host) : NULL;
        if (!h) {
                _cleanup_free_ char *esc = escape_for_terminal(o->host);

                snprintf(err, err_size,
                         "unknown host '%s' — the hosts: section of the policy lists the hosts "
                         "a command may target",
                         esc ? esc : "?");
                return -ENOENT;
        }
        if (h->connect) {
                STRV_FOREACH (a, h->connect)
                        if (strv_extend(&cmd, *a) < 0)
                                return -ENOMEM;
                STRV_FOREACH (a, o->argv)
                        if (strv_extend(&cmd, *a) < 0)
                                return -ENOMEM;
        } else {
                _cleanup_free_ char *dest = NULL, *line = argv_to_display(o->argv);

                for (size_t i = 0; i < ELEMENTSOF(host_default_connect); i++)
                        if (strv_extend(&cmd, host_default_connect[i]) < 0)
                                return -ENOMEM;
                if (!line || asprintf(&dest, "root@%s", h->address) < 0)
                        return -ENOMEM;
                if (strv_extend(&cmd, "--") < 0 || strv_extend(&cmd, dest) < 0 ||
                    strv_extend(&cmd, line) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(cmd);
        return 0;
}

/* Supplementary groups of the run-as user, as initgroups() would set them. */
static int run_as_groups(uid_t uid, gid_t gid, gid_t **ret, size_t *ret_n)
{
        struct passwd pw, *res = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ gid_t *groups = NULL;
        int n = 64;

        buf = malloc(16384);
        if (!buf)
                return -ENOMEM;
        if (getpwuid_r(uid, &pw, buf, 16384, &res) != 0 || !res) {
                *ret = NULL;
                *ret_n = 0; /* no passwd entry: no supplementary groups */
                return 0;
        }
        for (int tries = 0; tries < 8; tries++) {
                gid_t *t = reallocarray(groups, (size_t)n, sizeof(gid_t));
                int m = n;

                if (!t)
                        return -ENOMEM;
                groups = t;
                if (getgrouplist(pw.pw_name, gid, groups, &m) >= 0) {
                        *ret = TAKE_PTR(groups);
                        *ret_n = (size_t)m;
                        return 0;
                }
                n = m > n ? m : n * 2;
        }
        return -E2BIG;
}

/* "ADDRESS NAME" lines for the inventory hosts whose address is an IP literal. */
static int inventory_hosts_lines(const Policy *p, char **ret)
{
        _cleanup_free_ char *s = strdup("");

        if (!s)
                return -ENOMEM;
        for (size_t i = 0; p && i < p->n_hosts; i++) {
                const PolicyHost *h = &p->hosts[i];
                unsigned char a[16];
                char *t;

                if (!h->address || !h->name || strpbrk(h->name, " \t\n#"))
                        continue;
                if (inet_pton(AF_INET, h->address, a) != 1 &&
                    inet_pton(AF_INET6, h->address, a) != 1)
                        continue;
                if (asprintf(&t, "%s%s %s\n", s, h->address, h->name) < 0)
                        return -ENOMEM;
                free(s);
                s = t;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int plan_fail(char *err, size_t err_size, int r, const char *fmt, ...)
{
        va_list ap;

        if (err && err_size) {
                va_start(ap, fmt);
                vsnprintf(err, err_size, fmt, ap);
                va_end(ap);
        }
        return r;
}

static int read_exact_deadline(int fd, void *buf, size_t len, uint64_t deadline)
{
        size_t got = 0;

        while (got < len) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = now_monotonic_usec();
                ssize_t k;
                int n;

                if (now >= deadline)
                        return -ETIMEDOUT;
                n = poll(&p, 1, (int)((deadline - now) / 1000 + 1));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        continue;
                k = read(fd, (char *)buf + got, len - got);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -EPIPE;
                got += (size_t)k;
        }
        return 0;
}

/* Absolute, normalized ("." and ".." resolved lexically) form of a path argument. */
static char *absolute_arg(const char *cwd, const char *arg)
{
        _cleanup_free_ char *joined = NULL;
        char *out, *o;

        if (isempty(arg) || strchr(arg, ':') || strchr(arg, '\n'))
                return NULL; /* host:path and URLs are not local paths */
        if (asprintf(&joined, "%s/%s", arg[0] == '/' ? "" : cwd, arg) < 0)
                return NULL;
        out = malloc(strlen(joined) + 2);
        if (!out)
                return NULL;
        o = out;
        for (char *p = joined; *p;) {
                size_t n;

                while (*p == '/')
                        p++;
                n = strcspn(p, "/");
                if (n == 0)
                        break;
                if (n == 1 && p[0] == '.') {
                } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                        while (o > out && *--o != '/')
                                ;
                } else {
                        *o++ = '/';
                        memcpy(o, p, n);
                        o += n;
                }
                p += n;
        }
        if (o == out)
                *o++ = '/';
        *o = '\0';
        return out;
}

static int intent_from_argv(PlanResult *r, const Policy *p, char *const *argv, const char *program)
{
        STRV_FOREACH (a, argv) {
                const char *arg = *a;
                _cleanup_free_ char *path = NULL;
                struct stat st;
                bool seen = false;

                if (arg[0] == '-' && strchr(arg, '='))
                        arg = strchr(arg, '=') + 1; /* --key=/etc/... */
                else if (arg[0] == '-')
                        continue;
                path = absolute_arg(r->cwd ? r->cwd : "/", arg);
                if (!path || !policy_path_is_secret(p, path) || lstat(path, &st) < 0)
                        continue;
                for (size_t i = 0; i < r->n_secrets; i++)
                        if (streq(r->secrets[i].path, path))
                                seen = true;
                if (seen)
                        continue;
                if (plan_result_add_secret(r, path, program, false) < 0)
                        return -ENOMEM;
                {
                        _cleanup_free_ char *why = NULL, *e = escape_for_terminal(path);

                        if (asprintf(&why,
                                     "%s names the secret %s on its command line and was cut "
                                     "short: reading it is assumed, not observed",
                                     program ? program : "the command", e ? e : "?") < 0 ||
                            plan_result_partial(r, why) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

/*
 * A plan cut short (a refused connection, a timeout, a remote host) did
 * not see what the programs would have done next: a secret named on a
 * command line counts as read (scp's read of its source comes after its
 * connection, which the plan refuses).
 */
static int secrets_intent(PlanResult *r, const Policy *p, char *const *argv)
{
        int k;

        if (r->complete || !p)
                return 0;
        k = intent_from_argv(r, p, argv, argv[0]);
        for (size_t i = 0; k >= 0 && i < r->n_execs; i++)
                if (r->execs[i].argv)
                        k = intent_from_argv(r, p, r->execs[i].argv, r->execs[i].path);
        return k;
}

/* Merges the snapshot child's report (a partial PlanResult in JSON) into r. */
static int merge_child(PlanResult *r, const char *text, size_t len)
{
        _cleanup_json_ json_t *j = NULL;
        _cleanup_(plan_result_freep) PlanResult *c = NULL;
        json_error_t e;
        int k;

        j = json_loadb(text, len, 0, &e);
        if (!j)
                return -EBADMSG;
        k = plan_result_from_json(j, &c);
        if (k < 0)
                return k;
        r->exit_status = c->exit_status;
        r->timed_out = c->timed_out;
        STRV_FOREACH (s, c->fidelity_reasons)
                if (plan_result_partial(r, *s) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < c->n_files; i++) {
                k = plan_result_add_file(r, &c->files[i]);
                c->files[i] = (PlanFile){};
                if (k < 0)
                        return k;
        }
        return 0;
}

static void kill_and_reap(pid_t builder, pid_t helper)
{
        /* The builder is its pid namespace's init: SIGKILL ends every process in it. */
        if (builder > 0)
                (void)kill(builder, SIGKILL);
        if (helper > 0) {
                (void)kill(helper, SIGKILL);
                while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
}

/* ---- limits: the plan's processes in cgroups of their own ---- */

/*
 * The planned command is root of its own user namespace: RLIMIT_NPROC does
 * not hold uid 0, and it may mount tmpfs of its own. So its processes and
 * memory are bounded by cgroups (v1 pids and memory; a host without them
 * gets no plan): an agent's request for a fork bomb or a memory hog,
 * planned automatically by the broker before anyone approves it, must not
 * take the host down.
 */
#define PLAN_PIDS_MAX     2048
#define PLAN_MEMORY_EXTRA (1024ULL * 1024 * 1024) /* besides the upper layers' tmpfs */

typedef struct {
        char *dirs[2];
        int procs[2];
} PlanCgroups;

static void plan_cgroups_done(PlanCgroups *c)
{
        for (size_t i = 0; i < ELEMENTSOF(c->dirs); i++) {
                c->procs[i] = safe_close(c->procs[i]);
                if (!c->dirs[i])
                        continue;
                /* the pid namespace is gone, its last processes may still be exiting */
                for (int t = 0; t < 500; t++) {
                        if (rmdir(c->dirs[i]) == 0 || errno != EBUSY)
                                break;
                        usleep(2000);
                }
                free(c->dirs[i]);
                c->dirs[i] = NULL;
        }
}

static int write_file_at(const char *dir, const char *name, const char *value)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write(fd, value, strlen(value)) == (ssize_t)strlen(value) ? 0 : -errno;
}

/*
 * Removes the empty cgroups of plans whose process is gone (killed in the
 * middle of a plan: nothing else could remove them). Names are
 * plan-PID-N; a cgroup still holding processes is left alone (EBUSY).
 */
static void sweep_stale_cgroups(const char *base)
{
        DIR *d = opendir(base);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char path[512];
                int pid;

                if (sscanf(de->d_name, "plan-%d-", &pid) != 1 || pid <= 0)
                        continue;
                if (kill(pid, 0) == 0 || errno != ESRCH)
                        continue; /* its plan may still be running */
                snprintf(path, sizeof path, "%s/%s", base, de->d_name);
                (void)rmdir(path);
        }
        closedir(d);
}

static int plan_cgroups_prepare(PlanCgroups *c, uint64_t memory_max, char *err, size_t err_size)
{
        static unsigned counter;
        static const char *const ctl[] = { "pids", "memory" };
        unsigned n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);

        for (size_t i = 0; i < ELEMENTSOF(ctl); i++) {
                char base[64], value[32];
                _cleanup_free_ char *procs = NULL;
                int k;

                c->procs[i] = -EBADF;
                snprintf(base, sizeof base, "/sys/fs/cgroup/%s/cgroup.procs", ctl[i]);
                if (access(base, W_OK) < 0)
                        /* unbounded, a planned fork bomb would take the host down: fail closed */
                        return plan_fail(err, err_size, -EOPNOTSUPP,
                                         "cannot bound the planned command's processes and "
                                         "memory: this host has no cgroup v1 %s controller at "
                                         "/sys/fs/cgroup/%s (airlock does not use cgroup v2 "
                                         "yet), and a planned command could exhaust the host — "
                                         "no plan is made; mount the v1 pids and memory "
                                         "hierarchies to plan here",
                                         ctl[i], ctl[i]);
                snprintf(base, sizeof base, "/sys/fs/cgroup/%s/airlock", ctl[i]);
                if (mkdir(base, 0755) < 0 && errno != EEXIST)
                        return plan_fail(err, err_size, -errno, "cannot create %s: %m", base);
                sweep_stale_cgroups(base);
                if (asprintf(&c->dirs[i], "%s/plan-%d-%u", base, (int)getpid(), n) < 0)
                        return -ENOMEM;
                if (mkdir(c->dirs[i], 0700) < 0) {
                        k = -errno;
                        free(c->dirs[i]);
                        c->dirs[i] = NULL;
                        return plan_fail(err, err_size, k, "cannot create the plan's cgroup: %s",
                                         strerror(-k));
                }
                if (i == 0)
                        snprintf(value, sizeof value, "%d", PLAN_PIDS_MAX);
                else
                        snprintf(value, sizeof value, "%llu", (unsigned long long)memory_max);
                k = write_file_at(c->dirs[i], i == 0 ? "pids.max" : "memory.limit_in_bytes", value);
                if (k < 0)
                        return plan_fail(err, err_size, k, "cannot limit the plan's %s: %s", ctl[i],
                                         strerror(-k));
                if (asprintf(&procs, "%s/cgroup.procs", c->dirs[i]) < 0)
                        return -ENOMEM;
                c->procs[i] = open(procs, O_WRONLY | O_CLOEXEC);
                if (c->procs[i] < 0)
                        return plan_fail(err, err_size, -errno, "cannot open %s: %m", procs);
        }
        return 0;
}

/* In the forked helper, before anything else: into the plan's cgroups, or no plan. */
static void plan_cgroups_enter(const PlanCgroups *c)
{
        for (size_t i = 0; i < ELEMENTSOF(c->procs); i++)
                if (c->procs[i] >= 0 && write(c->procs[i], "0", 1) != 1)
                        _exit(1);
}

int plan_run(const PlanOptions *o, PlanResult **ret, char *err, size_t err_size)
{
        _cleanup_(plan_result_freep) PlanResult *r = NULL;
        _cleanup_strv_free_ char **argv = NULL, **globs = NULL;
        _cleanup_free_ gid_t *groups = NULL;
        _cleanup_free_ char *hosts_extra = NULL, *effects = NULL;
        _cleanup_close_ int ctl_r = -EBADF, ctl_w = -EBADF, go_r = -EBADF, go_w = -EBADF,
                            out_r = -EBADF, out_w = -EBADF, eff_r = -EBADF, eff_w = -EBADF,
                            sup_p = -EBADF, sup_c = -EBADF, root_fd = -EBADF;
        _cleanup_(plan_sup_freep) PlanSup *sup = NULL;
        _cleanup_(plan_cgroups_done) PlanCgroups cg = { .procs = { -EBADF, -EBADF } };
        PlanOptions opts;
        PlanSnapshotArgs a;
        size_t n_groups = 0, eff_len = 0, eff_alloc = 0;
        uint64_t start = now_monotonic_usec(), deadline;
        pid_t helper, builder = 0;
        int32_t bpid;
        int fds[2], k, status;
        char tag;

        if (!o || !o->argv || !o->argv[0] || !ret)
                return plan_fail(err, err_size, -EINVAL, "nothing to plan — give a command");
        if (!o->policy)
                return plan_fail(
                        err, err_size, -EINVAL,
                        "a plan needs the policy (its secrets and inventory) — load it first");
        if (geteuid() != 0)
                return plan_fail(err, err_size, -EPERM,
                                 "planning needs root (it builds namespaces and overlays over the "
                                 "host's filesystems) — run airlock plan as root");
        opts = *o;
        if (!opts.timeout_usec)
                opts.timeout_usec = PLAN_DEFAULT_TIMEOUT_USEC;
        if (!opts.output_max)
                opts.output_max = PLAN_DEFAULT_OUTPUT_MAX;
        if (!opts.diff_max)
                opts.diff_max = PLAN_DEFAULT_DIFF_MAX;
        if (!opts.tmpfs_max)
                opts.tmpfs_max = PLAN_DEFAULT_TMPFS_MAX;
        if (!opts.cwd)
                opts.cwd = "/";
        if (opts.cwd[0] != '/')
                return plan_fail(
                        err, err_size, -EINVAL,
                        "the working directory must be an absolute path — give --cwd /DIR");

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->complete = true;
        r->uid = opts.uid;
        r->gid = opts.gid;
        r->argv = strv_copy(o->argv);
        r->envp = o->envp ? strv_copy(o->envp) : calloc(1, sizeof(char *));
        r->cwd = strdup(opts.cwd);
        r->fidelity_reasons = calloc(1, sizeof(char *));
        if (!r->argv || !r->envp || !r->cwd || !r->fidelity_reasons ||
            (o->host && !(r->host = strdup(o->host))))
                return -ENOMEM;

        k = build_argv(&opts, &argv, err, err_size);
        if (k < 0)
                return k == -ENOMEM ? plan_fail(err, err_size, k, "out of memory") : k;
        if (o->host) {
                _cleanup_free_ char *why = NULL;
                _cleanup_free_ char *h = escape_for_terminal(o->host);

                if (asprintf(&why,
                             "the command runs on %s through its connect prefix: effects there "
                             "are not observable, only the local side was planned",
                             h ? h : "?") < 0 ||
                    plan_result_partial(r, why) < 0)
                        return -ENOMEM;
        }
        k = run_as_groups(opts.uid, opts.gid, &groups, &n_groups);
        if (k < 0)
                return plan_fail(err, err_size, k, "cannot read the groups of uid %u: %s", opts.uid,
                                 strerror(-k));
        if (opts.policy) {
                k = policy_secret_globs(opts.policy, &globs);
                if (k < 0)
                        return plan_fail(err, err_size, k, "out of memory");
        }
        k = inventory_hosts_lines(opts.policy, &hosts_extra);
        if (k < 0)
                return plan_fail(err, err_size, k, "out of memory");

        if (pipe2(fds, O_CLOEXEC) < 0)
                goto fail_errno;
        ctl_r = fds[0], ctl_w = fds[1];
        if (pipe2(fds, O_CLOEXEC) < 0)
                goto fail_errno;
        go_r = fds[0], go_w = fds[1];
        if (pipe2(fds, O_CLOEXEC) < 0)
                goto fail_errno;
        out_r = fds[0], out_w = fds[1];
        if (pipe2(fds, O_CLOEXEC) < 0)
                goto fail_errno;
        eff_r = fds[0], eff_w = fds[1];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                goto fail_errno;
        sup_p = fds[0], sup_c = fds[1];

        a = (PlanSnapshotArgs){
                .o = &opts,
                .argv = argv,
                .groups = groups,
                .n_groups = n_groups,
                .secret_globs = globs,
                .hosts_extra = hosts_extra,
                .ctl_fd = ctl_w,
                .go_fd = go_r,
                .out_fd = out_w,
                .effects_fd = eff_w,
                .sup_fd = sup_c,
        };
        fflush(NULL);
        /* glibc's fork(): the child may allocate even if this process has threads. */
        k = plan_cgroups_prepare(&cg, opts.tmpfs_max + PLAN_MEMORY_EXTRA, err, err_size);
        if (k < 0)
                return k;
        helper = fork();
        if (helper < 0)
                goto fail_errno;
        if (helper == 0) {
                plan_cgroups_enter(&cg);
                plan_snapshot_main(&a);
        }
        ctl_w = safe_close(ctl_w);
        go_r = safe_close(go_r);
        out_w = safe_close(out_w);
        eff_w = safe_close(eff_w);
        sup_c = safe_close(sup_c);

        /* Building the snapshot takes well under a second; a minute means it is stuck. */
        deadline = now_monotonic_usec() + 60ULL * 1000000;
        k = read_exact_deadline(ctl_r, &bpid, sizeof bpid, deadline);
        if (k >= 0) {
                builder = bpid;
                k = read_exact_deadline(ctl_r, &tag, 1, deadline);
        }
        if (k < 0 || tag != 'R') {
                char msg[512] = "";
                ssize_t n = 0;

                if (k >= 0 && tag == 'E') {
                        n = read(ctl_r, msg, sizeof msg - 1);
                        msg[n > 0 ? n : 0] = '\0';
                }
                kill_and_reap(builder, helper);
                if (n > 0)
                        return plan_fail(err, err_size, -EIO, "cannot build the snapshot: %s", msg);
                return plan_fail(err, err_size, k < 0 ? k : -EIO,
                                 "cannot build the snapshot: the snapshot process %s — see dmesg",
                                 k == -ETIMEDOUT ? "did not answer within a minute" : "died");
        }

        /*
         * The snapshot is ready and the command waits for our go. Watch it:
         * the supervisor gets the seccomp listener right before the exec, and
         * the secrets are marked as seen from the snapshot's root.
         */
        {
                char path[64];

                snprintf(path, sizeof path, "/proc/%d/root", (int)builder);
                root_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (root_fd < 0) {
                        k = negative_errno();
                        kill_and_reap(builder, helper);
                        return plan_fail(err, err_size, k, "cannot open the snapshot's root %s: %s",
                                         path, strerror(-k));
                }
        }
        k = plan_sup_start(PLAN_SUP_REFUSE, opts.policy, sup_p, r, &sup, err, err_size);
        if (k >= 0)
                k = plan_sup_watch_secrets(sup, root_fd, err, err_size);
        if (k < 0) {
                kill_and_reap(builder, helper);
                return k;
        }
        sup_p = safe_close(sup_p);
        root_fd = safe_close(root_fd);
        if (write(go_w, "G", 1) != 1) {
                k = negative_errno();
                kill_and_reap(builder, helper);
                return plan_fail(err, err_size, k, "cannot start the planned command: %s",
                                 strerror(-k));
        }
        go_w = safe_close(go_w);

        /* The output and the effects, until both pipes close. */
        deadline = now_monotonic_usec() + 2 * opts.timeout_usec + 300ULL * 1000000;
        r->output = malloc(opts.output_max + 1);
        if (!r->output) {
                kill_and_reap(builder, helper);
                return -ENOMEM;
        }
        while (out_r >= 0 || eff_r >= 0) {
                struct pollfd p[2] = { { .fd = out_r, .events = POLLIN },
                                       { .fd = eff_r, .events = POLLIN } };
                uint64_t now = now_monotonic_usec();
                char buf[65536];
                int n;

                if (now >= deadline) {
                        kill_and_reap(builder, helper);
                        return plan_fail(err, err_size, -ETIMEDOUT,
                                         "the snapshot did not finish long after the command's "
                                         "timeout — it was stopped");
                }
                n = poll(p, 2, (int)((deadline - now) / 1000 + 1));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        k = negative_errno();
                        kill_and_reap(builder, helper);
                        return plan_fail(err, err_size, k, "poll: %s", strerror(-k));
                }
                if (p[0].revents) {
                        ssize_t m = read(out_r, buf, sizeof buf);

                        if (m <= 0 && !(m < 0 && errno == EINTR))
                                out_r = safe_close(out_r);
                        else if (m > 0) {
                                size_t keep = opts.output_max - r->output_size;

                                if ((size_t)m > keep)
                                        r->output_truncated = true;
                                else
                                        keep = (size_t)m;
                                memcpy(r->output + r->output_size, buf, keep);
                                r->output_size += keep;
                        }
                }
                if (p[1].revents) {
                        ssize_t m;

                        if (eff_alloc - eff_len < sizeof buf) {
                                size_t na = eff_alloc ? eff_alloc * 2 : 1 << 20;
                                char *t;

                                if (na > PLAN_EFFECTS_MAX) {
                                        kill_and_reap(builder, helper);
                                        return plan_fail(
                                                err, err_size, -EFBIG,
                                                "the file effects exceed %llu MiB — plan a "
                                                "smaller command",
                                                PLAN_EFFECTS_MAX >> 20);
                                }
                                t = realloc(effects, na);
                                if (!t) {
                                        kill_and_reap(builder, helper);
                                        return -ENOMEM;
                                }
                                effects = t;
                                eff_alloc = na;
                        }
                        m = read(eff_r, effects + eff_len, eff_alloc - eff_len);
                        if (m <= 0 && !(m < 0 && errno == EINTR))
                                eff_r = safe_close(eff_r);
                        else if (m > 0)
                                eff_len += (size_t)m;
                }
        }
        r->output[r->output_size] = '\0';
        while (waitpid(helper, &status, 0) < 0)
                if (errno != EINTR) {
                        status = -1;
                        break;
                }
        k = plan_sup_stop(sup);
        if (k == -ECONNABORTED && r->output_size > 0) {
                /*
                 * The command's process never handed the supervisor its
                 * listener: it failed before its exec (the directory to run
                 * in, the user's groups), and what it wrote is airlock's own
                 * message from before the exec, not the command's.
                 */
                size_t n = r->output_size;

                while (n > 0 && r->output[n - 1] == '\n')
                        n--;
                return plan_fail(err, err_size, -EIO,
                                 "the command could not start in the snapshot: %.*s",
                                 (int)(n < 400 ? n : 400), r->output);
        }
        if (k < 0)
                return plan_fail(err, err_size, k, "the plan's supervisor failed: %s",
                                 strerror(-k));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || eff_len == 0) {
                char msg[512];
                ssize_t n = read(ctl_r, msg, sizeof msg - 1); /* the helpers are gone: no wait */

                if (n > 1 && msg[0] == 'E') {
                        msg[n] = '\0';
                        return plan_fail(err, err_size, -EIO, "the snapshot failed: %s", msg + 1);
                }
                return plan_fail(err, err_size, -EIO,
                                 "the snapshot process failed before reporting the file effects "
                                 "(status %d) — see dmesg, and retry",
                                 status);
        }
        k = merge_child(r, effects, eff_len);
        if (k < 0)
                return plan_fail(err, err_size, k, "cannot read the snapshot's report: %s",
                                 strerror(-k));

        k = secrets_intent(r, opts.policy, argv);
        if (k < 0)
                return plan_fail(err, err_size, k, "out of memory");
        if (r->n_secrets > 0) {
                /* A command that read a secret may print it: its output is never kept. */
                explicit_wipe(r->output, r->output_size);
                free(r->output);
                r->output = NULL;
                r->output_size = 0;
                r->output_truncated = false;
                r->output_withheld = true;
        }
        r->duration_usec = now_monotonic_usec() - start;
        k = plan_digest(r);
        if (k < 0)
                return plan_fail(err, err_size, k, "cannot compute the plan's digest");
        *ret = TAKE_PTR(r);
        return 0;

fail_errno:
        k = negative_errno();
        return plan_fail(err, err_size, k, "cannot prepare the plan: %s", strerror(-k));
}
