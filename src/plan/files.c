/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The file effects of a plan, from the overlays' upper layers: each upper
 * directory is walked against its lower one (the host as it was). Created,
 * modified (content, mode, owner, link target; never times), deleted
 * (whiteouts, and what an opaque directory hides) and renamed (a deleted
 * file whose content a created file holds). A file copied up but left equal
 * to its lower is no change.
 *
 * Everything read here was written by the planned command, which may be
 * hostile: every open is O_NOFOLLOW beneath a directory fd, sizes are
 * capped, recursion is bounded, and a file that holds a secret's bytes (or
 * is a secret) is never diffed.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "common/hash.h"
#include "common/util.h"
#include "plan/plan-internal.h"

#define FILES_MAX_DEPTH     128 /* below this depth nothing is compared (the plan says so) */
#define FILES_MAX_EFFECTS   (256 * 1024) /* listed effects; later ones only if they hold a secret */
#define FILES_READ_MAX      (64ULL * 1024 * 1024) /* files read whole up to this size */
#define FILES_CHUNK         (8 * 1024 * 1024)     /* larger files are scanned in chunks */
#define FILES_CHUNK_OVERLAP (64 * 1024)
#define FILES_SCAN_INFLIGHT (64 * 1024 * 1024) /* bytes queued for the secret scanner */
#define FILES_SUMMARIES_MAX 1000 /* binary summaries with digests; later ones without */

typedef struct {
        int upper_fd, lower_fd;
        char *prefix; /* "/" or "/run" (no trailing slash except "/") */
} Layer;

typedef struct {
        PlanFile f;
        size_t layer;
        char *rel;          /* relative to the layer's root */
        bool rename_source; /* a deleted regular file */
        bool rename_target; /* a created regular file */
        bool drop;
} Entry;

/*
 * The secret scan of one file's content, done by the scanner thread while
 * the walk goes on (it is the costliest part of a walk). Its result is
 * applied in plan_files_finish(), before anything leaves the walker.
 */
typedef struct {
        size_t entry;
        char *new_buf, *old_buf; /* copies, wiped and freed by the scanner */
        size_t new_len, old_len;
        int large_dir; /* >= 0: a large file, scanned in chunks from large_dir/large_name */
        char *large_name;
        const char *found_new, *found_old; /* owned by the fingerprints */
} ScanJob;

struct PlanFiles {
        const Policy *policy;
        const PlanFingerprints *fp;
        size_t diff_max, diff_left;
        unsigned summaries;
        Layer *layers;
        size_t n_layers;
        Entry *entries;
        size_t n_entries, alloc;
        char *baseline_path;
        char *baseline;
        size_t baseline_len;
        bool too_deep, overflow;
        /* the scanner thread and its queue (jobs[next..n_jobs) are waiting) */
        pthread_t scanner;
        bool scanner_started, closing;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        ScanJob **jobs;
        size_t n_jobs, alloc_jobs, next_job;
        size_t inflight;
        Entry scratch; /* effects past FILES_MAX_EFFECTS (see new_entry()) */
        char *buf[2];  /* reusable read buffers: upper, lower */
        size_t buf_size[2];
};

static void *scanner_main(void *arg);
static void scanner_stop(PlanFiles *pf);
static void job_free(ScanJob *j);

PlanFiles *plan_files_new(const Policy *policy, const PlanFingerprints *fp, size_t diff_max,
                          size_t diff_total)
{
        PlanFiles *pf = calloc(1, sizeof *pf);

        if (!pf)
                return NULL;
        pf->policy = policy;
        pf->fp = fp;
        pf->diff_max = diff_max ? diff_max : PLAN_DEFAULT_DIFF_MAX;
        pf->diff_left = diff_total;
        pthread_mutex_init(&pf->lock, NULL);
        pthread_cond_init(&pf->cond, NULL);
        /* without a thread the scan runs inline: slower, same result */
        if (fp && pthread_create(&pf->scanner, NULL, scanner_main, pf) == 0)
                pf->scanner_started = true;
        return pf;
}

static void plan_file_done(PlanFile *f)
{
        free(f->path);
        free(f->renamed_from);
        free(f->link_target);
        free(f->diff);
        free(f->summary);
        free(f->secret_content);
        *f = (PlanFile){};
}

PlanFiles *plan_files_free(PlanFiles *pf)
{
        if (!pf)
                return NULL;
        scanner_stop(pf);
        for (size_t i = 0; i < pf->n_jobs; i++)
                job_free(pf->jobs[i]);
        free(pf->jobs);
        pthread_mutex_destroy(&pf->lock);
        pthread_cond_destroy(&pf->cond);
        for (size_t i = 0; i < pf->n_layers; i++) {
                safe_close(pf->layers[i].upper_fd);
                safe_close(pf->layers[i].lower_fd);
                free(pf->layers[i].prefix);
        }
        free(pf->layers);
        for (size_t i = 0; i < pf->n_entries; i++) {
                plan_file_done(&pf->entries[i].f);
                free(pf->entries[i].rel);
        }
        free(pf->entries);
        plan_file_done(&pf->scratch.f);
        free(pf->scratch.rel);
        free(pf->baseline_path);
        free(pf->baseline);
        for (unsigned i = 0; i < 2; i++) {
                if (pf->buf[i])
                        explicit_wipe(pf->buf[i], pf->buf_size[i]);
                free(pf->buf[i]);
        }
        free(pf);
        return NULL;
}

int plan_files_set_baseline(PlanFiles *pf, const char *path, const void *data, size_t len)
{
        char *p = strdup(path), *d = malloc(len + 1);

        if (!p || !d) {
                free(p);
                free(d);
                return -ENOMEM;
        }
        memcpy(d, data, len);
        d[len] = '\0';
        free(pf->baseline_path);
        free(pf->baseline);
        pf->baseline_path = p;
        pf->baseline = d;
        pf->baseline_len = len;
        return 0;
}

static char *mfree_str(char *s)
{
        free(s);
        return NULL;
}

char plan_file_type(mode_t m)
{
        switch (m & S_IFMT) {
        case S_IFREG:
                return 'f';
        case S_IFDIR:
                return 'd';
        case S_IFLNK:
                return 'l';
        case S_IFCHR:
                return 'c';
        case S_IFBLK:
                return 'b';
        case S_IFIFO:
                return 'p';
        case S_IFSOCK:
                return 's';
        default:
                return '?';
        }
}

static bool is_whiteout(const struct stat *st)
{
        return S_ISCHR(st->st_mode) && major(st->st_rdev) == 0 && minor(st->st_rdev) == 0;
}

static char *join_rel(const char *rel, const char *name)
{
        char *s;

        if (asprintf(&s, "%s%s%s", rel, *rel ? "/" : "", name) < 0)
                return NULL;
        return s;
}

static char *host_path(const Layer *l, const char *rel)
{
        char *s;

        if (!*rel)
                return strdup(l->prefix);
        if (asprintf(&s, "%s/%s", streq(l->prefix, "/") ? "" : l->prefix, rel) < 0)
                return NULL;
        return s;
}

/* Opens a file beneath dir without following any symlink, for reading. */
static int open_beneath(int dir, const char *rel, int flags)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, dir, *rel ? rel : ".", &how, sizeof how);

        return fd < 0 ? negative_errno() : fd;
}

/*
 * Reads a regular file of known size whole (at most FILES_READ_MAX) into
 * one of the walker's two reusable buffers (no allocation and no page
 * faults per file: a walk reads thousands).
 */
static int read_file(PlanFiles *pf, unsigned slot, int dir, const char *rel, uint64_t size,
                     const char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = -EBADF;
        char *buf;
        size_t got = 0;

        if (size > FILES_READ_MAX)
                return -EFBIG;
        fd = open_beneath(dir, rel, O_RDONLY);
        if (fd < 0)
                return fd;
        if (pf->buf_size[slot] < size + 1) {
                size_t n = pf->buf_size[slot] * 2 > size + 1 ? pf->buf_size[slot] * 2 : size + 1;
                char *t;

                if (pf->buf[slot])
                        explicit_wipe(pf->buf[slot], pf->buf_size[slot]);
                t = realloc(pf->buf[slot], n);
                if (!t)
                        return -ENOMEM;
                pf->buf[slot] = t;
                pf->buf_size[slot] = n;
        }
        buf = pf->buf[slot];
        while (got < size) {
                ssize_t k = pread(fd, buf + got, (size_t)size - got, (off_t)got);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break; /* shrank: the command is dead, so only a racing host */
                got += (size_t)k;
        }
        buf[got] = '\0';
        *ret = buf;
        *ret_len = got;
        return 0;
}

/* Scans a large file for secret bytes in overlapping chunks. */
static const char *scan_large(const PlanFiles *pf, int dir, const char *rel)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        off_t off = 0;

        if (!pf->fp)
                return NULL;
        fd = open_beneath(dir, rel, O_RDONLY);
        buf = malloc(FILES_CHUNK);
        if (fd < 0 || !buf)
                return NULL;
        for (;;) {
                ssize_t k = pread(fd, buf, FILES_CHUNK, off);
                const char *s;

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return NULL;
                s = plan_fp_scan(pf->fp, buf, (size_t)k);
                if (s)
                        return s;
                if ((size_t)k < FILES_CHUNK)
                        return NULL;
                off += FILES_CHUNK - FILES_CHUNK_OVERLAP;
        }
}

static void job_free(ScanJob *j)
{
        if (!j)
                return;
        if (j->new_buf) {
                explicit_wipe(j->new_buf, j->new_len);
                free(j->new_buf);
        }
        if (j->old_buf) {
                explicit_wipe(j->old_buf, j->old_len);
                free(j->old_buf);
        }
        safe_close(j->large_dir);
        free(j->large_name);
        free(j);
}

static size_t job_bytes(const ScanJob *j)
{
        return j->large_name ? FILES_READ_MAX : j->new_len + j->old_len;
}

static void *scanner_main(void *arg)
{
        PlanFiles *pf = arg;

        pthread_mutex_lock(&pf->lock);
        for (;;) {
                ScanJob *j;
                size_t bytes;

                while (pf->next_job == pf->n_jobs && !pf->closing)
                        pthread_cond_wait(&pf->cond, &pf->lock);
                if (pf->next_job == pf->n_jobs)
                        break;
                j = pf->jobs[pf->next_job++];
                pthread_mutex_unlock(&pf->lock);

                bytes = job_bytes(j);
                if (j->large_name)
                        j->found_new = scan_large(pf, j->large_dir, j->large_name);
                else {
                        j->found_new = plan_fp_scan(pf->fp, j->new_buf, j->new_len);
                        if (j->old_buf)
                                j->found_old = plan_fp_scan(pf->fp, j->old_buf, j->old_len);
                }
                /* the content is not needed any more */
                if (j->new_buf)
                        explicit_wipe(j->new_buf, j->new_len);
                if (j->old_buf)
                        explicit_wipe(j->old_buf, j->old_len);
                free(j->new_buf);
                free(j->old_buf);
                j->new_buf = j->old_buf = NULL;
                j->large_dir = safe_close(j->large_dir);

                pthread_mutex_lock(&pf->lock);
                pf->inflight -= bytes;
                pthread_cond_broadcast(&pf->cond);
        }
        pthread_mutex_unlock(&pf->lock);
        return NULL;
}

/* Queues e's content (copied) or, for a large file, its place, for the scanner. */
static int scan_later(PlanFiles *pf, const Entry *e, const char *new, size_t new_len,
                      const char *old, size_t old_len, int large_dir, const char *large_name)
{
        ScanJob *j = calloc(1, sizeof *j);
        int r = 0;

        if (!j)
                return -ENOMEM;
        j->entry = (size_t)(e - pf->entries);
        j->large_dir = -EBADF;
        if (large_name) {
                j->large_dir = fcntl(large_dir, F_DUPFD_CLOEXEC, 3);
                j->large_name = strdup(large_name);
                if (j->large_dir < 0 || !j->large_name)
                        r = -ENOMEM;
        } else {
                j->new_buf = malloc(new_len ? new_len : 1);
                if (j->new_buf) {
                        memcpy(j->new_buf, new, new_len);
                        j->new_len = new_len;
                } else
                        r = -ENOMEM;
                if (old) {
                        j->old_buf = malloc(old_len ? old_len : 1);
                        if (j->old_buf) {
                                memcpy(j->old_buf, old, old_len);
                                j->old_len = old_len;
                        } else
                                r = -ENOMEM;
                }
        }
        if (r < 0) {
                job_free(j);
                return r;
        }
        pthread_mutex_lock(&pf->lock);
        while (pf->inflight > FILES_SCAN_INFLIGHT)
                pthread_cond_wait(&pf->cond, &pf->lock);
        if (pf->n_jobs == pf->alloc_jobs) {
                size_t na = pf->alloc_jobs ? pf->alloc_jobs * 2 : 256;
                ScanJob **t = reallocarray(pf->jobs, na, sizeof *t);

                if (!t) {
                        pthread_mutex_unlock(&pf->lock);
                        job_free(j);
                        return -ENOMEM;
                }
                pf->jobs = t;
                pf->alloc_jobs = na;
        }
        pf->jobs[pf->n_jobs++] = j;
        pf->inflight += job_bytes(j);
        pthread_cond_broadcast(&pf->cond);
        pthread_mutex_unlock(&pf->lock);
        return 0;
}

static void scanner_stop(PlanFiles *pf)
{
        if (!pf->scanner_started)
                return;
        pthread_mutex_lock(&pf->lock);
        pf->closing = true;
        pthread_cond_broadcast(&pf->cond);
        pthread_mutex_unlock(&pf->lock);
        pthread_join(pf->scanner, NULL);
        pf->scanner_started = false;
}

/* The scanner's verdict on one file: its secret, and no diff or summary if it holds one. */
static int apply_scan(PlanFiles *pf, const ScanJob *j)
{
        PlanFile *f = &pf->entries[j->entry].f;

        if (j->found_new) {
                f->secret_content = strdup(j->found_new);
                if (!f->secret_content)
                        return -ENOMEM;
        }
        if (j->found_new || j->found_old) {
                f->diff = mfree_str(f->diff);
                f->diff_truncated = false;
                f->summary = mfree_str(f->summary);
        }
        return 0;
}

/* Whether two large files differ, compared in chunks. */
static bool large_differ(int d1, const char *r1, int d2, const char *r2)
{
        _cleanup_close_ int a = open_beneath(d1, r1, O_RDONLY), b = open_beneath(d2, r2, O_RDONLY);
        _cleanup_free_ char *x = malloc(FILES_CHUNK), *y = malloc(FILES_CHUNK);
        off_t off = 0;

        if (a < 0 || b < 0 || !x || !y)
                return true;
        for (;;) {
                ssize_t k = pread(a, x, FILES_CHUNK, off), m = pread(b, y, FILES_CHUNK, off);

                if (k != m || k < 0)
                        return true;
                if (k == 0)
                        return false;
                if (memcmp(x, y, (size_t)k) != 0)
                        return true;
                off += k;
        }
}

static int read_link(int dir, const char *name, char **ret)
{
        char buf[4097];
        ssize_t k = readlinkat(dir, name, buf, sizeof buf - 1);

        if (k < 0)
                return negative_errno();
        buf[k] = '\0';
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/*
 * A new effect. Past FILES_MAX_EFFECTS it is the scratch entry, reused for
 * every later effect and kept only if it holds a secret's bytes: a command
 * cannot hide a copied secret behind a flood of other files.
 */
static Entry *new_entry(PlanFiles *pf, size_t layer, const char *rel, PlanFileChange change)
{
        Entry *e;

        if (pf->n_entries >= FILES_MAX_EFFECTS) {
                pf->overflow = true;
                plan_file_done(&pf->scratch.f);
                free(pf->scratch.rel);
                e = &pf->scratch;
                *e = (Entry){ .layer = layer, .f.change = change };
                e->rel = strdup(rel);
                e->f.path = host_path(&pf->layers[layer], rel);
                return e->rel && e->f.path ? e : NULL;
        }
        if (pf->n_entries == pf->alloc) {
                size_t na = pf->alloc ? pf->alloc * 2 : 64;
                Entry *t = reallocarray(pf->entries, na, sizeof *t);

                if (!t)
                        return NULL;
                pf->entries = t;
                pf->alloc = na;
        }
        e = &pf->entries[pf->n_entries];
        *e = (Entry){ .layer = layer, .f.change = change };
        e->rel = strdup(rel);
        e->f.path = host_path(&pf->layers[layer], rel);
        if (!e->rel || !e->f.path) {
                free(e->rel);
                free(e->f.path);
                return NULL;
        }
        pf->n_entries++;
        return e;
}

/* Keeps the scratch entry (past the limit) if it holds a secret's bytes. */
static int keep_if_secret(PlanFiles *pf, Entry *e)
{
        if (e != &pf->scratch || !e->f.secret_content)
                return 0;
        if (pf->n_entries == pf->alloc) {
                Entry *t = reallocarray(pf->entries, pf->alloc * 2, sizeof *t);

                if (!t)
                        return -ENOMEM;
                pf->entries = t;
                pf->alloc *= 2;
        }
        pf->entries[pf->n_entries++] = *e;
        *e = (Entry){};
        return 0;
}

static int entry_fail(const PlanFiles *pf)
{
        (void)pf;
        return -ENOMEM;
}

static void set_old(PlanFile *f, const struct stat *st)
{
        f->old_mode = st->st_mode;
        f->old_uid = st->st_uid;
        f->old_gid = st->st_gid;
        f->old_size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
}

static void set_new(PlanFile *f, const struct stat *st)
{
        f->type = plan_file_type(st->st_mode);
        f->new_mode = st->st_mode;
        f->new_uid = st->st_uid;
        f->new_gid = st->st_gid;
        f->new_size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
}

static bool path_is_secret(const PlanFiles *pf, const char *path)
{
        return pf->policy && policy_path_is_secret(pf->policy, path);
}

/*
 * Content details of a created or modified regular file: secret bytes,
 * then a diff (text) or a summary (binary). old is NULL for a created file.
 */
static int describe_content(PlanFiles *pf, Entry *e, const char *old, size_t old_len,
                            bool old_exists, const char *new, size_t new_len)
{
        PlanFile *f = &e->f;
        const char *s = NULL, *s_old = NULL;
        bool secret_path = path_is_secret(pf, f->path);
        int r;

        /* a secret's own path is never shown anyway: no need to scan it */
        if (pf->fp && !secret_path && pf->scanner_started && e != &pf->scratch) {
                r = scan_later(pf, e, new, new_len, old_exists ? old : NULL, old_len, -EBADF, NULL);
                if (r < 0)
                        return r;
        } else if (pf->fp && !secret_path) {
                s = plan_fp_scan(pf->fp, new, new_len);
                if (old_exists)
                        s_old = plan_fp_scan(pf->fp, old, old_len);
        }
        /* A secret edited in place, or copied to another secret's place, is not
         * "elsewhere": the reads-secret effect already covers it. */
        if (s && !secret_path) {
                f->secret_content = strdup(s);
                if (!f->secret_content)
                        return -ENOMEM;
        }
        if (s || s_old || secret_path)
                return 0; /* never shown */
        /* past the budget no diff is made: the first 4 KiB tell text from binary */
        if (pf->diff_left == 0) {
                size_t nl = new_len < 4096 ? new_len : 4096, ol = old_len < 4096 ? old_len : 4096;

                if (plan_is_text(new, nl) && (!old_exists || plan_is_text(old, ol))) {
                        f->diff_truncated = true;
                        return 0;
                }
        } else if (plan_is_text(new, new_len) && (!old_exists || plan_is_text(old, old_len))) {
                bool truncated = false;
                size_t max = pf->diff_max;

                /* diffs while the budget lasts (the last one may overshoot by diff_max) */
                r = plan_diff(old_exists ? old : "", old_exists ? old_len : 0, new, new_len,
                              old_exists ? f->path + 1 : NULL, f->path + 1, max, &f->diff,
                              &truncated);
                if (r == -E2BIG) {
                        f->diff_truncated = true;
                        return 0;
                }
                if (r < 0)
                        return r;
                f->diff_truncated = truncated;
                pf->diff_left -= strlen(f->diff) < pf->diff_left ? strlen(f->diff) : pf->diff_left;
                return 0;
        }
        if (pf->summaries < FILES_SUMMARIES_MAX) {
                pf->summaries++;
                f->summary = plan_binary_summary(old, old_len, old_exists, new, new_len, true);
        } else if (old_exists) {
                if (asprintf(&f->summary, "binary, %zu → %zu bytes", old_len, new_len) < 0)
                        f->summary = NULL;
        } else if (asprintf(&f->summary, "binary, %zu bytes", new_len) < 0)
                f->summary = NULL;
        return f->summary ? 0 : -ENOMEM;
}

/* A large file (beyond FILES_READ_MAX): secret scan only. */
static int describe_large(PlanFiles *pf, Entry *e, int udir, const char *name)
{
        PlanFile *f = &e->f;
        const char *s = NULL;

        if (pf->fp && !path_is_secret(pf, f->path) && pf->scanner_started && e != &pf->scratch) {
                int r = scan_later(pf, e, NULL, 0, NULL, 0, udir, name);

                if (r < 0)
                        return r;
        } else if (!path_is_secret(pf, f->path))
                s = scan_large(pf, udir, name);

        if (s && !path_is_secret(pf, f->path)) {
                f->secret_content = strdup(s);
                if (!f->secret_content)
                        return -ENOMEM;
        }
        if (!s && asprintf(&f->summary, "large file, %" PRIu64 " bytes", f->new_size) < 0)
                return -ENOMEM;
        return 0;
}

static int record_deleted(PlanFiles *pf, size_t layer, int ldir, const char *name, const char *rel,
                          const struct stat *lst, unsigned depth);

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of a directory, sorted: the walk (and so the diff budget) is deterministic. */
static int read_names(int dfd, char ***ret)
{
        _cleanup_close_ int copy = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0, alloc = 0;
        struct dirent *de;
        DIR *d;

        if (copy < 0)
                return negative_errno();
        d = fdopendir(copy);
        if (!d)
                return negative_errno();
        TAKE_FD(copy);
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (n + 2 > alloc) {
                        size_t na = alloc ? alloc * 2 : 16;
                        char **t = reallocarray(names, na, sizeof *t);

                        if (!t) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        names = t;
                        alloc = na;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        closedir(d);
                        return -ENOMEM;
                }
                names[++n] = NULL;
        }
        closedir(d);
        if (!names) {
                names = calloc(1, sizeof *names);
                if (!names)
                        return -ENOMEM;
        }
        qsort(names, n, sizeof *names, cmp_str);
        *ret = TAKE_PTR(names);
        return 0;
}

/* Everything beneath a lower directory, deleted. */
static int record_deleted_children(PlanFiles *pf, size_t layer, int dfd, const char *rel,
                                   unsigned depth)
{
        _cleanup_strv_free_ char **names = NULL;
        int r;

        if (depth > FILES_MAX_DEPTH) {
                pf->too_deep = true; /* skipped, not fatal: the walk goes on past it */
                return 0;
        }
        r = read_names(dfd, &names);
        if (r < 0)
                return r;
        STRV_FOREACH (name, names) {
                _cleanup_free_ char *crel = join_rel(rel, *name);
                struct stat st;

                if (!crel)
                        return -ENOMEM;
                if (fstatat(dfd, *name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                r = record_deleted(pf, layer, dfd, *name, crel, &st, depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int record_deleted(PlanFiles *pf, size_t layer, int ldir, const char *name, const char *rel,
                          const struct stat *lst, unsigned depth)
{
        Entry *e = new_entry(pf, layer, rel, PLAN_FILE_DELETED);

        if (!e)
                return entry_fail(pf);
        e->f.type = plan_file_type(lst->st_mode);
        set_old(&e->f, lst);
        e->rename_source = S_ISREG(lst->st_mode) && lst->st_size > 0;
        if (S_ISDIR(lst->st_mode)) {
                _cleanup_close_ int sub = open_beneath(ldir, name, O_RDONLY | O_DIRECTORY);

                if (sub < 0)
                        return sub;
                return record_deleted_children(pf, layer, sub, rel, depth);
        }
        return 0;
}

static int walk_dir(PlanFiles *pf, size_t layer, int udir, int ldir, const char *rel, bool opaque,
                    unsigned depth);

/* Everything beneath a new upper directory, created. */
static int record_created(PlanFiles *pf, size_t layer, int udir, const char *name, const char *rel,
                          const struct stat *ust, unsigned depth)
{
        Entry *e = new_entry(pf, layer, rel, PLAN_FILE_CREATED);
        int r;

        if (!e)
                return entry_fail(pf);
        set_new(&e->f, ust);
        if (S_ISDIR(ust->st_mode)) {
                _cleanup_close_ int sub = open_beneath(udir, name, O_RDONLY | O_DIRECTORY);

                if (sub < 0)
                        return sub;
                return walk_dir(pf, layer, sub, -EBADF, rel, false, depth + 1);
        }
        if (S_ISLNK(ust->st_mode))
                return read_link(udir, name, &e->f.link_target);
        if (S_ISREG(ust->st_mode)) {
                const char *buf = NULL;
                size_t len = 0;

                e->rename_target = ust->st_size > 0;
                e->f.content_changed = true;
                if ((uint64_t)ust->st_size > FILES_READ_MAX)
                        r = describe_large(pf, e, udir, name);
                else {
                        r = read_file(pf, 0, udir, name, (uint64_t)ust->st_size, &buf, &len);
                        if (r < 0)
                                return r;
                        r = describe_content(pf, e, NULL, 0, false, buf, len);
                        explicit_wipe(pf->buf[0], len);
                }
                return r < 0 ? r : keep_if_secret(pf, e);
        }
        return 0;
}

static unsigned unreadable_xattrs; /* numbers each unreadable value: none equals another */

/* A file's extended attributes (overlayfs's own left out) as sorted "name=hexvalue" lines. */
static char **xattrs_of(int dir, const char *name)
{
        _cleanup_close_ int fd = open_beneath(dir, name, O_RDONLY);
        _cleanup_free_ char *list = NULL;
        _cleanup_strv_free_ char **out = NULL;
        ssize_t n;

        out = calloc(1, sizeof(char *));
        if (!out)
                return NULL;
        if (fd < 0)
                return TAKE_PTR(out);
        n = flistxattr(fd, NULL, 0);
        if (n <= 0 || n > 65536)
                return TAKE_PTR(out);
        list = malloc((size_t)n);
        if (!list)
                return NULL;
        n = flistxattr(fd, list, (size_t)n);
        for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(list + i) + 1) {
                const char *x = list + i;
                _cleanup_free_ unsigned char *v = NULL;
                _cleanup_free_ char *hex = NULL;
                char *line;
                ssize_t k;

                if (strneq(x, "user.overlay.", strlen("user.overlay.")))
                        continue;
                /*
                 * The whole value, whatever its size (up to the kernel's 64
                 * KiB): a cut one would compare equal where it differs.
                 * One that cannot be read is marked so: never equal.
                 */
                k = fgetxattr(fd, x, NULL, 0);
                v = malloc(k > 0 ? (size_t)k : 1);
                if (!v)
                        return NULL;
                if (k > 0)
                        k = fgetxattr(fd, x, v, (size_t)k);
                hex = malloc(k > 0 ? (size_t)k * 2 + 1 : 1);
                if (!hex)
                        return NULL;
                hex_encode(v, k > 0 ? (size_t)k : 0, hex);
                if ((k < 0 ? asprintf(&line, "%s=?unreadable-%u", x,
                                      __atomic_add_fetch(&unreadable_xattrs, 1, __ATOMIC_RELAXED))
                           : asprintf(&line, "%s=%s", x, hex)) < 0 ||
                    strv_consume(&out, line) < 0)
                        return NULL;
        }
        qsort(out, strv_length(out), sizeof *out, cmp_str);
        return TAKE_PTR(out);
}

/*
 * The names of the extended attributes (ACLs, file capabilities, ...)
 * that differ between the upper and the lower file, or NULL when none do.
 * Sets *ret_enomem on allocation failure.
 */
static char *xattrs_changed(int udir, int ldir, const char *name, bool *ret_enomem)
{
        _cleanup_strv_free_ char **u = xattrs_of(udir, name), **l = xattrs_of(ldir, name);
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ char *joined = NULL;
        char *const *lists[2] = { u, l };
        size_t len = 0;

        if (!u || !l) {
                *ret_enomem = true;
                return NULL;
        }
        for (int side = 0; side < 2; side++)
                STRV_FOREACH (x, lists[side]) {
                        _cleanup_free_ char *n = strndup(*x, strcspn(*x, "="));

                        if (!n) {
                                *ret_enomem = true;
                                return NULL;
                        }
                        if (strv_contains(lists[1 - side], *x) || strv_contains(names, n))
                                continue;
                        if (strv_consume(&names, TAKE_PTR(n)) < 0) {
                                *ret_enomem = true;
                                return NULL;
                        }
                }
        if (!names)
                return NULL;
        STRV_FOREACH (n, names)
                len += strlen(*n) + 2;
        joined = calloc(1, len + 1);
        if (!joined) {
                *ret_enomem = true;
                return NULL;
        }
        STRV_FOREACH (n, names) {
                if (n != names)
                        strcat(joined, ", ");
                strcat(joined, *n);
        }
        return TAKE_PTR(joined);
}

static int note_xattrs(PlanFile *f, const char *names)
{
        char *t;

        if (!names)
                return 0;
        if (asprintf(&t, "%s%sextended attributes changed: %s", f->summary ? f->summary : "",
                     f->summary ? "; " : "", names) < 0)
                return -ENOMEM;
        free(f->summary);
        f->summary = t;
        return 0;
}

/* An upper entry over a lower entry of a non-directory type. */
static int compare_entry(PlanFiles *pf, size_t layer, int udir, int ldir, const char *name,
                         const char *rel, const struct stat *ust, const struct stat *lst)
{
        _cleanup_free_ char *path = host_path(&pf->layers[layer], rel);
        _cleanup_free_ char *ulink = NULL, *llink = NULL, *xnames = NULL;
        const char *ubuf = NULL, *lbuf = NULL;
        size_t ulen = 0, llen = 0;
        bool content = false, mode, owner, large = false, baseline;
        Entry *e;
        int r;

        if (!path)
                return -ENOMEM;
        baseline = pf->baseline_path && streq(path, pf->baseline_path) && S_ISREG(ust->st_mode);
        mode = ust->st_mode != lst->st_mode;
        owner = ust->st_uid != lst->st_uid || ust->st_gid != lst->st_gid;
        if ((ust->st_mode & S_IFMT) != (lst->st_mode & S_IFMT)) {
                /*
                 * A new kind of file in place of the old (a symlink replaced
                 * by a file, say): its content is all new, and must be shown
                 * and scanned like a created file's.
                 */
                content = true;
                if (S_ISREG(ust->st_mode)) {
                        if (ust->st_size > (off_t)FILES_READ_MAX)
                                large = true;
                        else {
                                r = read_file(pf, 0, udir, name, (uint64_t)ust->st_size, &ubuf,
                                              &ulen);
                                if (r < 0)
                                        return r;
                        }
                } else if (S_ISLNK(ust->st_mode)) {
                        r = read_link(udir, name, &ulink);
                        if (r < 0)
                                return r;
                }
        } else if (S_ISLNK(ust->st_mode)) {
                r = read_link(udir, name, &ulink);
                if (r >= 0)
                        r = read_link(ldir, name, &llink);
                if (r < 0)
                        return r;
                content = !streq(ulink, llink);
        } else if (S_ISREG(ust->st_mode)) {
                if (ust->st_size > (off_t)FILES_READ_MAX || lst->st_size > (off_t)FILES_READ_MAX) {
                        large = true;
                        content = ust->st_size != lst->st_size ||
                                  large_differ(udir, name, ldir, name);
                } else {
                        r = read_file(pf, 0, udir, name, (uint64_t)ust->st_size, &ubuf, &ulen);
                        if (r < 0)
                                return r;
                        if (baseline) {
                                lbuf = pf->baseline;
                                llen = pf->baseline_len;
                        } else {
                                r = read_file(pf, 1, ldir, name, (uint64_t)lst->st_size, &lbuf,
                                              &llen);
                                if (r < 0)
                                        return r;
                        }
                        content = ulen != llen || memcmp(ubuf, lbuf, ulen) != 0;
                }
        } else if (S_ISCHR(ust->st_mode) || S_ISBLK(ust->st_mode))
                content = ust->st_rdev != lst->st_rdev;
        if (S_ISREG(ust->st_mode) && S_ISREG(lst->st_mode)) {
                bool enomem = false;

                xnames = xattrs_changed(udir, ldir, name, &enomem);
                if (enomem)
                        return -ENOMEM;
        }
        if (!content && !mode && !owner && !xnames)
                return 0; /* copied up, left equal */

        e = new_entry(pf, layer, rel, PLAN_FILE_MODIFIED);
        if (!e)
                return entry_fail(pf);
        set_old(&e->f, lst);
        set_new(&e->f, ust);
        e->f.content_changed = content;
        e->f.mode_changed = mode;
        e->f.owner_changed = owner;
        if (ulink)
                e->f.link_target = TAKE_PTR(ulink);
        if (content && S_ISREG(ust->st_mode)) {
                if (large)
                        r = describe_large(pf, e, udir, name);
                else
                        r = describe_content(pf, e, lbuf, llen, S_ISREG(lst->st_mode), ubuf, ulen);
                if (r < 0)
                        return r;
        }
        if (ubuf)
                explicit_wipe(pf->buf[0], ulen);
        if (lbuf && !baseline)
                explicit_wipe(pf->buf[1], llen);
        if (note_xattrs(&e->f, xnames) < 0)
                return -ENOMEM;
        return keep_if_secret(pf, e);
}

static bool dir_is_opaque(int dir, const char *name)
{
        _cleanup_close_ int fd = open_beneath(dir, name, O_RDONLY | O_DIRECTORY);
        char v[8];
        ssize_t k;

        if (fd < 0)
                return false;
        k = fgetxattr(fd, "user.overlay.opaque", v, sizeof v);
        return k == 1 && v[0] == 'y';
}

/*
 * Walks upper directory udir against lower directory ldir (-EBADF when the
 * directory is new). opaque: the lower's entries missing from the upper are
 * gone.
 */
static int walk_dir(PlanFiles *pf, size_t layer, int udir, int ldir, const char *rel, bool opaque,
                    unsigned depth)
{
        _cleanup_strv_free_ char **names = NULL, **lnames = NULL;
        int r;

        if (depth > FILES_MAX_DEPTH) {
                pf->too_deep = true; /* skipped, not fatal: the walk goes on past it */
                return 0;
        }
        r = read_names(udir, &names);
        if (r < 0)
                return r;
        STRV_FOREACH (np, names) {
                const char *name = *np;
                _cleanup_free_ char *crel = join_rel(rel, name);
                struct stat ust, lst;
                bool lower;

                if (!crel)
                        return -ENOMEM;
                if (fstatat(udir, name, &ust, AT_SYMLINK_NOFOLLOW) < 0)
                        return negative_errno();
                lower = ldir >= 0 && fstatat(ldir, name, &lst, AT_SYMLINK_NOFOLLOW) == 0;

                if (is_whiteout(&ust)) {
                        if (lower)
                                r = record_deleted(pf, layer, ldir, name, crel, &lst, depth + 1);
                } else if (S_ISDIR(ust.st_mode) && lower && S_ISDIR(lst.st_mode)) {
                        _cleanup_close_ int us = -EBADF, ls = -EBADF;
                        _cleanup_free_ char *xnames = NULL;
                        bool child_opaque = opaque || dir_is_opaque(udir, name), enomem = false;

                        xnames = xattrs_changed(udir, ldir, name, &enomem);
                        if (enomem)
                                return -ENOMEM;
                        if (ust.st_mode != lst.st_mode || ust.st_uid != lst.st_uid ||
                            ust.st_gid != lst.st_gid || xnames) {
                                Entry *e = new_entry(pf, layer, crel, PLAN_FILE_MODIFIED);

                                if (!e || note_xattrs(&e->f, xnames) < 0)
                                        return entry_fail(pf);
                                set_old(&e->f, &lst);
                                set_new(&e->f, &ust);
                                e->f.mode_changed = ust.st_mode != lst.st_mode;
                                e->f.owner_changed =
                                        ust.st_uid != lst.st_uid || ust.st_gid != lst.st_gid;
                        }
                        us = open_beneath(udir, name, O_RDONLY | O_DIRECTORY);
                        ls = open_beneath(ldir, name, O_RDONLY | O_DIRECTORY);
                        if (us < 0 || ls < 0)
                                return us < 0 ? us : ls;
                        r = walk_dir(pf, layer, us, ls, crel, child_opaque, depth + 1);
                } else if (lower && (S_ISDIR(ust.st_mode) || S_ISDIR(lst.st_mode))) {
                        /* a directory replaced a file, or the reverse */
                        r = record_deleted(pf, layer, ldir, name, crel, &lst, depth + 1);
                        if (r >= 0)
                                r = record_created(pf, layer, udir, name, crel, &ust, depth);
                } else if (lower)
                        r = compare_entry(pf, layer, udir, ldir, name, crel, &ust, &lst);
                else
                        r = record_created(pf, layer, udir, name, crel, &ust, depth);
                if (r < 0)
                        return r;
        }
        if (!opaque || ldir < 0)
                return 0;

        /* An opaque directory hides every lower entry it does not hold itself. */
        r = read_names(ldir, &lnames);
        if (r < 0)
                return r;
        STRV_FOREACH (np, lnames) {
                _cleanup_free_ char *crel = NULL;
                struct stat st;

                if (fstatat(udir, *np, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
                        continue;
                if (fstatat(ldir, *np, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                crel = join_rel(rel, *np);
                if (!crel)
                        return -ENOMEM;
                r = record_deleted(pf, layer, ldir, *np, crel, &st, depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

int plan_files_walk(PlanFiles *pf, int upper_fd, int lower_fd, const char *prefix)
{
        _cleanup_close_ int u = -EBADF, l = -EBADF;
        _cleanup_free_ char *p = NULL;
        struct stat ust, lst;
        Layer *t;
        size_t layer;

        if (!prefix || prefix[0] != '/')
                return -EINVAL;
        u = fcntl(upper_fd, F_DUPFD_CLOEXEC, 3);
        l = fcntl(lower_fd, F_DUPFD_CLOEXEC, 3);
        if (u < 0 || l < 0)
                return negative_errno();
        p = strdup(prefix);
        if (!p)
                return -ENOMEM;
        if (strlen(p) > 1 && p[strlen(p) - 1] == '/')
                p[strlen(p) - 1] = '\0';
        t = reallocarray(pf->layers, pf->n_layers + 1, sizeof *t);
        if (!t)
                return -ENOMEM;
        pf->layers = t;
        layer = pf->n_layers++;
        t[layer] = (Layer){ .upper_fd = TAKE_FD(u), .lower_fd = TAKE_FD(l), .prefix = TAKE_PTR(p) };

        /* The layer's root: its mode and owner mirror the lower's unless changed. */
        if (fstat(t[layer].upper_fd, &ust) < 0 || fstat(t[layer].lower_fd, &lst) < 0)
                return negative_errno();
        if (ust.st_mode != lst.st_mode || ust.st_uid != lst.st_uid || ust.st_gid != lst.st_gid) {
                Entry *e = new_entry(pf, layer, "", PLAN_FILE_MODIFIED);

                if (!e)
                        return entry_fail(pf);
                set_old(&e->f, &lst);
                set_new(&e->f, &ust);
                e->f.mode_changed = ust.st_mode != lst.st_mode;
                e->f.owner_changed = ust.st_uid != lst.st_uid || ust.st_gid != lst.st_gid;
        }
        return walk_dir(pf, layer, t[layer].upper_fd, t[layer].lower_fd, "",
                        dir_is_opaque(t[layer].upper_fd, ""), 0);
}

/* Whether two files (entries of any layer) hold the same bytes. */
static bool same_content(const PlanFiles *pf, const Entry *del, const Entry *cre)
{
        const Layer *ld = &pf->layers[del->layer], *lc = &pf->layers[cre->layer];

        return !large_differ(ld->lower_fd, del->rel, lc->upper_fd, cre->rel);
}

static int cmp_size(const void *a, const void *b)
{
        const Entry *x = *(Entry *const *)a, *y = *(Entry *const *)b;

        if (x->f.old_size != y->f.old_size)
                return x->f.old_size < y->f.old_size ? -1 : 1;
        return strcmp(x->f.path, y->f.path);
}

static int cmp_path(const void *a, const void *b)
{
        const PlanFile *x = a, *y = b;
        int c = strcmp(x->path, y->path);

        if (c)
                return c;
        /* the same path deleted and created: the deletion first */
        return (x->change == PLAN_FILE_DELETED ? 0 : 1) - (y->change == PLAN_FILE_DELETED ? 0 : 1);
}

static int pair_renames(PlanFiles *pf)
{
        _cleanup_free_ Entry **dels = NULL;
        size_t n = 0;

        for (size_t i = 0; i < pf->n_entries; i++)
                if (pf->entries[i].rename_source)
                        n++;
        if (n == 0)
                return 0;
        dels = calloc(n, sizeof *dels);
        if (!dels)
                return -ENOMEM;
        n = 0;
        for (size_t i = 0; i < pf->n_entries; i++)
                if (pf->entries[i].rename_source)
                        dels[n++] = &pf->entries[i];
        qsort(dels, n, sizeof *dels, cmp_size);

        for (size_t i = 0; i < pf->n_entries; i++) {
                Entry *c = &pf->entries[i], key = { .f.old_size = c->f.new_size }, *kp = &key;
                size_t lo = 0, hi = n;
                unsigned tries = 0;

                if (!c->rename_target)
                        continue;
                while (lo < hi) { /* the first deletion of this size */
                        size_t mid = (lo + hi) / 2;

                        if (dels[mid]->f.old_size < kp->f.old_size)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
                for (; lo < n && dels[lo]->f.old_size == c->f.new_size && tries < 16; lo++) {
                        Entry *d = dels[lo];

                        if (d->drop)
                                continue;
                        tries++;
                        if (!same_content(pf, d, c))
                                continue;
                        c->f.change = PLAN_FILE_RENAMED;
                        c->f.renamed_from = TAKE_PTR(d->f.path);
                        c->f.old_mode = d->f.old_mode;
                        c->f.old_uid = d->f.old_uid;
                        c->f.old_gid = d->f.old_gid;
                        c->f.old_size = d->f.old_size;
                        c->f.content_changed = false;
                        c->f.mode_changed = c->f.old_mode != c->f.new_mode;
                        c->f.owner_changed =
                                c->f.old_uid != c->f.new_uid || c->f.old_gid != c->f.new_gid;
                        /* equal content: nothing to show but where it went */
                        c->f.diff = mfree_str(c->f.diff);
                        c->f.summary = mfree_str(c->f.summary);
                        c->f.diff_truncated = false;
                        d->drop = true;
                        break;
                }
        }
        return 0;
}

int plan_files_finish(PlanFiles *pf, PlanResult *r)
{
        _cleanup_free_ PlanFile *files = NULL;
        size_t n = 0;
        int k;

        scanner_stop(pf);
        for (size_t i = 0; i < pf->n_jobs; i++) {
                k = apply_scan(pf, pf->jobs[i]);
                if (k < 0)
                        return k;
        }
        k = pair_renames(pf);
        if (k < 0)
                return k;
        if (pf->overflow &&
            plan_result_partial(r, "more than 262144 files changed: the first ones are listed, "
                                   "and every later one that holds a secret's bytes") < 0)
                return -ENOMEM;
        if (pf->too_deep &&
            plan_result_partial(r, "directories are nested more than 128 deep: "
                                   "what lies below that depth was not compared") < 0)
                return -ENOMEM;
        files = calloc(pf->n_entries ? pf->n_entries : 1, sizeof *files);
        if (!files)
                return -ENOMEM;
        for (size_t i = 0; i < pf->n_entries; i++) {
                Entry *e = &pf->entries[i];

                if (e->drop) {
                        plan_file_done(&e->f);
                        continue;
                }
                files[n++] = e->f;
                e->f = (PlanFile){};
        }
        qsort(files, n, sizeof *files, cmp_path);
        for (size_t i = 0; i < n; i++) {
                k = plan_result_add_file(r, &files[i]);
                if (k < 0) {
                        for (size_t j = i; j < n; j++)
                                plan_file_done(&files[j]);
                        return k;
                }
        }
        return 0;
}
