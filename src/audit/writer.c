/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The log writer. Records are chained and queued under one mutex; whoever
 * finds no flush in progress becomes the leader, writes everything queued
 * with one write() and one fdatasync(), and wakes the others (group
 * commit). A record's caller returns only after the sync that covered it.
 * Any write or sync error fails the writer for good (fail closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "audit/audit-copy.h"
#include "audit/audit-internal.h"
#include "common/hash.h"
#include "common/util.h"
#include "config.h"

/* How long a new sync leader waits for the writers the last sync woke. */
#define GATHER_USEC 100

struct AuditWriter {
        pthread_mutex_t lock;
        pthread_cond_t cond;       /* durable_seq, failed or flushing changed */
        pthread_cond_t timer_cond; /* wakes the seal timer */
        pthread_cond_t sync_cond;  /* wakes the sync thread */
        pthread_t timer, syncer;
        bool timer_running, syncer_running, stopping, closed;
        uint64_t sync_wanted; /* the sync thread makes records up to here durable */
        int dir_fd, fd;
        char *host;
        uint64_t seal_every_records, seal_every_usec;
        AuditCopy copy; /* used only by the flush leader */

        /* chain: the last record queued */
        uint64_t last_seq;
        char head[AUDIT_HASH_HEX_LEN + 1];
        /* queued, not yet written */
        char *buf;
        size_t len, cap;
        AuditCopyItem *items;
        size_t n_items, cap_items;

        bool flushing, gathering;
        size_t last_batch; /* records in the last sync */
        size_t n_calls;    /* append calls whose records are queued */
        size_t last_calls; /* append calls the last sync served */
        uint64_t durable_seq;
        char durable_head[AUDIT_HASH_HEX_LEN + 1];
        int failed;

        bool have_key, key_dirty;
        AuditKeyState key;
        uint64_t unsealed, first_unsealed_mono;
};

static int reserve(void **p, size_t *cap, size_t need, size_t elem)
{
        size_t n;
        void *t;

        if (need <= *cap)
                return 0;
        n = *cap ? *cap * 2 : 16;
        while (n < need)
                n *= 2;
        t = realloc(*p, n * elem);
        if (!t)
                return -ENOMEM;
        *p = t;
        *cap = n;
        return 0;
}

static void copy_item_fill(AuditCopyItem *it, json_t *rec, const char *hash)
{
        json_t *agent = json_object_get(rec, "agent");
        const char *s;

        memset(it, 0, sizeof(*it));
        it->seq = audit_rec_seq(rec);
        memcpy(it->hash, hash, sizeof(it->hash));
        snprintf(it->event, sizeof(it->event), "%s", audit_rec_str(rec, "event"));
        s = audit_rec_str(rec, "request");
        snprintf(it->request, sizeof(it->request), "%s", s ? s : "");
        s = json_is_object(agent) ? json_string_value(json_object_get(agent, "name")) : NULL;
        snprintf(it->agent, sizeof(it->agent), "%s", s ? s : "");
}

/* Queues raw bytes (the newline that ends a torn region). */
static int queue_raw_locked(AuditWriter *w, const char *s, size_t n)
{
        if (reserve((void **)&w->buf, &w->cap, w->len + n, 1) < 0)
                return -ENOMEM;
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        return 0;
}

/* Serializes rec, queues it, advances the chain. Does not touch w->failed. */
static int queue_record_locked(AuditWriter *w, json_t *rec)
{
        _cleanup_free_ char *text = NULL;
        char hex[AUDIT_HASH_HEX_LEN + 1];
        size_t n;

        text = audit_record_dump(rec, &n);
        if (!text)
                return -ENOMEM;
        if (n > AUDIT_RECORD_MAX)
                return -E2BIG;
        if (reserve((void **)&w->buf, &w->cap, w->len + n + 1, 1) < 0 ||
            reserve((void **)&w->items, &w->cap_items, w->n_items + 1, sizeof(AuditCopyItem)) < 0)
                return -ENOMEM;
        audit_hash_line(text, n, NULL, hex);
        memcpy(w->buf + w->len, text, n);
        w->buf[w->len + n] = '\n';
        w->len += n + 1;
        copy_item_fill(&w->items[w->n_items++], rec, hex);
        w->last_seq = audit_rec_seq(rec);
        memcpy(w->head, hex, sizeof(hex));
        return 0;
}

static int build_locked(AuditWriter *w, json_t *fields, json_t **ret)
{
        return audit_record_build(fields, w->last_seq + 1, now_realtime_usec(), w->host, w->head,
                                  ret);
}

/* Queues a seal of everything queued so far, then evolves the key. */
static int seal_locked(AuditWriter *w)
{
        json_t *fields, *rec = NULL;
        char mac[AUDIT_HASH_HEX_LEN + 1];
        int r;

        fields = json_pack("{s:s, s:{s:I, s:s, s:s}}", "event", AUDIT_EVENT_SEAL, "details",
                           "epoch", (json_int_t)w->key.epoch, "key", w->key.id, "mac", "");
        if (!fields)
                return -ENOMEM;
        r = build_locked(w, fields, &rec);
        json_decref(fields);
        if (r < 0)
                return r;
        r = audit_seal_mac(rec, w->key.key, mac);
        if (r == 0 &&
            json_object_set_new(json_object_get(rec, "details"), "mac", json_string(mac)) < 0)
                r = -ENOMEM;
        if (r == 0)
                r = queue_record_locked(w, rec);
        json_decref(rec);
        if (r < 0)
                return r;
        /* The epoch key has signed its one seal: replace it, wiping the old one. */
        audit_key_evolve(w->key.key);
        w->key.epoch++;
        w->key_dirty = true;
        w->unsealed = 0;
        return 0;
}

/* Queues a record from fields (its seq into *ret_seq); seals if the count says so. */
static int append_locked(AuditWriter *w, json_t *fields, uint64_t *ret_seq)
{
        json_t *rec = NULL;
        int r;

        r = build_locked(w, fields, &rec);
        if (r < 0)
                return r;
        r = queue_record_locked(w, rec);
        json_decref(rec);
        if (r < 0)
                return r;
        if (ret_seq)
                *ret_seq = w->last_seq;
        if (!w->have_key)
                return 0;
        if (w->unsealed++ == 0) {
                w->first_unsealed_mono = now_monotonic_usec();
                pthread_cond_signal(&w->timer_cond);
        }
        if (w->unsealed >= w->seal_every_records) {
                r = seal_locked(w);
                /* A record queued without its due seal must not be acknowledged. */
                if (r < 0 && !w->failed)
                        w->failed = r;
        }
        return 0;
}

/* The leader: writes and syncs all that is queued, with the lock dropped. */
static void flush_locked(AuditWriter *w)
{
        _cleanup_free_ char *buf = TAKE_PTR(w->buf);
        _cleanup_free_ AuditCopyItem *items = TAKE_PTR(w->items);
        size_t len = w->len, n_items = w->n_items;
        uint64_t upto = w->last_seq;
        char head[AUDIT_HASH_HEX_LEN + 1];
        AuditKeyState ks;
        bool persist = w->key_dirty;
        int r = 0;

        w->last_batch = n_items;
        w->last_calls = w->n_calls;
        w->n_calls = 0;
        w->len = w->cap = w->n_items = w->cap_items = 0;
        memcpy(head, w->head, sizeof(head));
        if (persist)
                ks = w->key;
        w->key_dirty = false;
        w->flushing = true;
        pthread_mutex_unlock(&w->lock);

        if (len > 0) {
                r = write_all(w->fd, buf, len);
                if (r == 0 && fdatasync(w->fd) < 0)
                        r = negative_errno();
        }
        /* Only once the seal is on disk may the key file move past its epoch. */
        if (r == 0 && persist)
                r = audit_key_store(w->dir_fd, &ks, false);
        if (persist)
                explicit_wipe(&ks, sizeof(ks));
        if (r == 0)
                for (size_t i = 0; i < n_items; i++)
                        audit_copy_send(&w->copy, &items[i]);

        pthread_mutex_lock(&w->lock);
        if (r < 0) {
                if (!w->failed)
                        w->failed = r;
        } else {
                w->durable_seq = upto;
                memcpy(w->durable_head, head, sizeof(head));
        }
        w->flushing = false;
        pthread_cond_broadcast(&w->cond);
}

static int commit_locked(AuditWriter *w, uint64_t seq)
{
        for (;;) {
                if (w->durable_seq >= seq)
                        return 0;
                if (w->failed)
                        return w->failed;
                if (!w->flushing && !w->gathering) {
                        /* The writers the last sync woke are still coming back with their
                         * next records: give them a moment to join this batch, or every
                         * other sync carries only the first one back. Counted in calls,
                         * not records: one caller's batch (audit_append_many()) says
                         * nothing about other writers coming back. */
                        if (w->n_calls * 2 < w->last_calls) {
                                w->gathering = true;
                                pthread_mutex_unlock(&w->lock);
                                usleep(GATHER_USEC);
                                pthread_mutex_lock(&w->lock);
                                w->gathering = false;
                        }
                        flush_locked(w);
                        continue;
                }
                pthread_cond_wait(&w->cond, &w->lock);
        }
}

static void *timer_main(void *p)
{
        AuditWriter *w = p;

        pthread_mutex_lock(&w->lock);
        while (!w->stopping) {
                if (w->have_key && w->unsealed > 0 && !w->failed) {
                        uint64_t deadline = w->first_unsealed_mono + w->seal_every_usec;
                        struct timespec ts;

                        if (now_monotonic_usec() >= deadline) {
                                int r = seal_locked(w);

                                if (r < 0 && !w->failed)
                                        w->failed = r;
                                (void)commit_locked(w, w->last_seq);
                                continue;
                        }
                        ts.tv_sec = (time_t)(deadline / 1000000);
                        ts.tv_nsec = (long)(deadline % 1000000) * 1000;
                        pthread_cond_timedwait(&w->timer_cond, &w->lock, &ts);
                } else
                        pthread_cond_wait(&w->timer_cond, &w->lock);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/*
 * The sync thread: writes and syncs records queued by audit_append_start()
 * while their caller does other work (the broker commits its database in
 * the meantime), so that the two syncs overlap instead of adding up.
 */
static void *sync_main(void *p)
{
        AuditWriter *w = p;

        pthread_mutex_lock(&w->lock);
        while (!w->stopping) {
                if (w->sync_wanted > w->durable_seq && !w->failed) {
                        (void)commit_locked(w, w->sync_wanted);
                        continue;
                }
                pthread_cond_wait(&w->sync_cond, &w->lock);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* ---- opening: reading the end of an existing log ---- */

typedef struct {
        size_t valid_end; /* offset after the last valid record's newline */
        bool have_last;
        uint64_t last_seq;
        char last_hash[AUDIT_HASH_HEX_LEN + 1];
        bool prev_closed;
        bool have_seal;
        uint64_t seal_epoch;
        char seal_key[AUDIT_KEYID_LEN + 1];
} TailInfo;

static bool line_is_seal(const char *s, size_t n)
{
        static const char needle[] = "\"event\":\"seal\"";

        return memmem(s, n, needle, sizeof(needle) - 1) != NULL;
}

static int scan_tail(const char *m, size_t size, TailInfo *ti)
{
        size_t end = size; /* end of the part not yet looked at */
        const char *last_event = NULL, *before_last = NULL;
        json_t *last = NULL, *before = NULL;
        int r = 0;

        memset(ti, 0, sizeof(*ti));
        /* A fragment after the last newline is torn by definition. */
        while (end > 0 && m[end - 1] != '\n')
                end--;
        while (end > 0) {
                size_t e = end - 1, s = e; /* line is m[s, e), m[e] == '\n' */
                json_t *rec = NULL;

                while (s > 0 && m[s - 1] != '\n')
                        s--;
                end = s;
                if (!ti->have_last || !before || (!ti->have_seal && line_is_seal(m + s, e - s))) {
                        if (audit_parse_record(m + s, e - s, &rec) < 0) {
                                if (!ti->have_last && size - s > AUDIT_TORN_MAX) {
                                        r = -EBADMSG; /* too much garbage to be a crash */
                                        break;
                                }
                                continue;
                        }
                } else
                        continue;
                if (!ti->have_last) {
                        ti->have_last = true;
                        ti->valid_end = e + 1;
                        ti->last_seq = audit_rec_seq(rec);
                        audit_hash_line(m + s, e - s, NULL, ti->last_hash);
                        last = json_incref(rec);
                } else if (!before)
                        before = json_incref(rec);
                if (!ti->have_seal && streq(audit_rec_str(rec, "event"), AUDIT_EVENT_SEAL)) {
                        json_t *d = json_object_get(rec, "details");

                        ti->have_seal = true;
                        ti->seal_epoch = (uint64_t)json_integer_value(json_object_get(d, "epoch"));
                        snprintf(ti->seal_key, sizeof(ti->seal_key), "%s",
                                 json_string_value(json_object_get(d, "key")));
                }
                json_decref(rec);
                if (ti->have_seal && before)
                        break;
        }
        if (r == 0 && !ti->have_last && size > AUDIT_TORN_MAX)
                r = -EBADMSG;
        /* A crash leaves a prefix of what was written: a line without its newline.
         * Complete lines that are not records were not left by a crash. */
        if (r == 0 && size > 0 && m[size - 1] == '\n' && ti->valid_end != size)
                r = -EBADMSG;
        if (last)
                last_event = audit_rec_str(last, "event");
        if (before)
                before_last = audit_rec_str(before, "event");
        ti->prev_closed = last_event && (streq(last_event, AUDIT_EVENT_LOG_CLOSE) ||
                                         (streq(last_event, AUDIT_EVENT_SEAL) && before_last &&
                                          streq(before_last, AUDIT_EVENT_LOG_CLOSE)));
        json_decref(last);
        json_decref(before);
        return r;
}

static int load_key(AuditWriter *w, const TailInfo *ti, bool require)
{
        int r;

        r = audit_key_load(w->dir_fd, &w->key);
        if (r == -ENOENT) {
                /* A sealed log whose key vanished must not go on unsealed. */
                if (require || ti->have_seal)
                        return -ENOKEY;
                return 0;
        }
        if (r < 0)
                return r;
        if (ti->have_seal) {
                if (!streq(ti->seal_key, w->key.id) || w->key.epoch > ti->seal_epoch + 1)
                        return -EKEYREJECTED;
                if (w->key.epoch <= ti->seal_epoch) {
                        /* Crashed after a seal was synced, before the key moved on. */
                        while (w->key.epoch <= ti->seal_epoch) {
                                audit_key_evolve(w->key.key);
                                w->key.epoch++;
                        }
                        r = audit_key_store(w->dir_fd, &w->key, false);
                        if (r < 0)
                                return r;
                }
        } else if (w->key.epoch != 1)
                return -EKEYREJECTED; /* the key has sealed, but no seal is left in the log */
        w->have_key = true;
        return 0;
}

static void writer_free(AuditWriter *w)
{
        if (!w)
                return;
        safe_close(w->fd);
        safe_close(w->dir_fd);
        audit_copy_done(&w->copy);
        free(w->host);
        free(w->buf);
        free(w->items);
        explicit_wipe(&w->key, sizeof(w->key));
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        pthread_cond_destroy(&w->timer_cond);
        pthread_cond_destroy(&w->sync_cond);
        free(w);
}

static int write_opening_records(AuditWriter *w, const TailInfo *ti, const char *m, size_t size)
{
        json_t *f;
        int r;

        if (size > ti->valid_end) {
                /* Keep the torn bytes where they are; a record names and hashes them. */
                size_t bytes = size - ti->valid_end;
                char sha[SHA256_HEX_LEN + 1];

                if (m[size - 1] == '\n')
                        bytes--;
                else if ((r = queue_raw_locked(w, "\n", 1)) < 0)
                        return r;
                r = sha256_hex(m + ti->valid_end, bytes, sha);
                if (r < 0)
                        return r;
                f = json_pack("{s:s, s:{s:I, s:I, s:s}}", "event", AUDIT_EVENT_TORN_TAIL, "details",
                              "offset", (json_int_t)ti->valid_end, "bytes", (json_int_t)bytes,
                              "sha256", sha);
                if (!f)
                        return -ENOMEM;
                r = append_locked(w, f, NULL);
                json_decref(f);
                if (r < 0)
                        return r;
        }
        f = json_pack("{s:s, s:{s:I, s:s, s:b, s:o}}", "event", AUDIT_EVENT_LOG_OPEN, "details",
                      "pid", (json_int_t)getpid(), "version", AIRLOCK_VERSION, "sealing",
                      w->have_key, "previous_closed",
                      ti->have_last ? json_boolean(ti->prev_closed) : json_null());
        if (!f)
                return -ENOMEM;
        r = append_locked(w, f, NULL);
        json_decref(f);
        return r;
}

int audit_open(const AuditOptions *o, AuditWriter **ret)
{
        AuditWriter *w;
        pthread_condattr_t ca;
        _cleanup_close_ int rfd = -EBADF;
        char hostbuf[256];
        const char *m = NULL;
        TailInfo ti;
        struct stat st;
        size_t size = 0;
        int r;

        if (!o || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->fd = w->dir_fd = -EBADF;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->timer_cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_cond_init(&w->sync_cond, NULL);
        r = audit_copy_init(&w->copy, o->copy, o->syslog_socket);
        if (r < 0)
                goto fail;
        w->seal_every_records = o->seal_every_records ?: AUDIT_SEAL_EVERY_RECORDS_DEFAULT;
        w->seal_every_usec = o->seal_every_usec ?: AUDIT_SEAL_EVERY_USEC_DEFAULT;
        if (o->host)
                w->host = strdup(o->host);
        else if (gethostname(hostbuf, sizeof(hostbuf) - 1) == 0) {
                hostbuf[sizeof(hostbuf) - 1] = '\0';
                w->host = strdup(hostbuf);
        } else
                w->host = strdup("localhost");
        if (!w->host) {
                r = -ENOMEM;
                goto fail;
        }
        w->dir_fd = audit_state_dir_open(o->state_dir, true);
        if (w->dir_fd < 0) {
                r = w->dir_fd;
                goto fail;
        }
        w->fd = openat(w->dir_fd, AUDIT_LOG_FILE,
                       O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (w->fd < 0) {
                r = negative_errno();
                goto fail;
        }
        /* One writer per log: a second chain appended to the same file would fork it. */
        if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : negative_errno();
                goto fail;
        }
        if (fstat(w->fd, &st) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
                r = -EPERM;
                goto fail;
        }
        if ((st.st_mode & 077) && fchmod(w->fd, 0600) < 0) {
                r = negative_errno();
                goto fail;
        }
        size = (size_t)st.st_size;
        if (size > 0) {
                rfd = openat(w->dir_fd, AUDIT_LOG_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (rfd < 0) {
                        r = negative_errno();
                        goto fail;
                }
                m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, rfd, 0);
                if (m == MAP_FAILED) {
                        m = NULL;
                        r = negative_errno();
                        goto fail;
                }
        }
        r = scan_tail(m, size, &ti);
        if (r < 0)
                goto fail;
        w->last_seq = w->durable_seq = ti.have_last ? ti.last_seq : 0;
        memcpy(w->head, ti.have_last ? ti.last_hash : AUDIT_GENESIS_PREV, sizeof(w->head));
        memcpy(w->durable_head, w->head, sizeof(w->head));
        r = load_key(w, &ti, o->require_sealing);
        if (r < 0)
                goto fail;

        pthread_mutex_lock(&w->lock);
        r = write_opening_records(w, &ti, m, size);
        if (r == 0)
                r = commit_locked(w, w->last_seq);
        pthread_mutex_unlock(&w->lock);
        if (r < 0)
                goto fail;
        if (m)
                munmap((void *)m, size);
        m = NULL;

        r = -pthread_create(&w->syncer, NULL, sync_main, w);
        if (r < 0)
                goto fail;
        w->syncer_running = true;
        r = -pthread_create(&w->timer, NULL, timer_main, w);
        if (r < 0)
                goto fail;
        w->timer_running = true;
        *ret = w;
        return 0;
fail:
        if (w->syncer_running) {
                pthread_mutex_lock(&w->lock);
                w->stopping = true;
                pthread_cond_signal(&w->sync_cond);
                pthread_mutex_unlock(&w->lock);
                pthread_join(w->syncer, NULL);
        }
        if (m)
                munmap((void *)m, size);
        writer_free(w);
        return r;
}

int audit_append(AuditWriter *w, json_t *fields, uint64_t *ret_seq)
{
        uint64_t seq;
        int r;

        if (!w)
                return -EINVAL;
        if (audit_fields_check(fields, false) < 0)
                return -EINVAL;
        pthread_mutex_lock(&w->lock);
        if (w->closed) {
                r = -ESHUTDOWN;
                goto out;
        }
        if (w->failed) {
                r = w->failed;
                goto out;
        }
        r = append_locked(w, fields, &seq);
        if (r < 0)
                goto out;
        w->n_calls++;
        r = commit_locked(w, seq);
        if (r == 0 && ret_seq)
                *ret_seq = seq;
out:
        pthread_mutex_unlock(&w->lock);
        return r;
}

/*
 * Queues n records under one hold of the lock: they are consecutive in the
 * chain. Returns 0 and the last one's seq, or an error; on an error after
 * some were queued, *ret_partial_seq names the last queued (they are in the
 * chain and will be written), else 0.
 */
static int queue_many(AuditWriter *w, json_t *const *fields, size_t n, uint64_t *ret_seq,
                      uint64_t *ret_partial_seq)
{
        uint64_t seq = 0;
        int r;

        *ret_partial_seq = 0;
        if (!w || (!fields && n > 0))
                return -EINVAL;
        /* Check them all before queuing any: a malformed one queues nothing. */
        for (size_t i = 0; i < n; i++)
                if (audit_fields_check(fields[i], false) < 0)
                        return -EINVAL;
        if (w->closed)
                return -ESHUTDOWN;
        if (w->failed)
                return w->failed;
        if (n == 0) {
                /* nothing to add: durable means what is queued so far */
                *ret_seq = w->last_seq;
                return 0;
        }
        w->n_calls++;
        for (size_t i = 0; i < n; i++) {
                r = append_locked(w, fields[i], &seq);
                if (r < 0) {
                        *ret_partial_seq = i > 0 ? seq : 0;
                        return r;
                }
        }
        *ret_seq = seq;
        return 0;
}

int audit_append_many(AuditWriter *w, json_t *const *fields, size_t n, uint64_t *ret_last_seq)
{
        uint64_t seq = 0, partial = 0;
        int r;

        if (!w)
                return -EINVAL;
        pthread_mutex_lock(&w->lock);
        r = queue_many(w, fields, n, &seq, &partial);
        if (r < 0) {
                /*
                 * The ones queued before are in the chain and will be written;
                 * sync them, but report the failure: the caller must not act
                 * on the batch.
                 */
                if (partial > 0)
                        (void)commit_locked(w, partial);
        } else
                r = commit_locked(w, seq);
        if (r == 0 && ret_last_seq)
                *ret_last_seq = seq;
        pthread_mutex_unlock(&w->lock);
        return r;
}

int audit_append_start(AuditWriter *w, json_t *const *fields, size_t n, uint64_t *ret_last_seq)
{
        uint64_t seq = 0, partial = 0;
        int r;

        if (!w || !ret_last_seq)
                return -EINVAL;
        pthread_mutex_lock(&w->lock);
        r = queue_many(w, fields, n, &seq, &partial);
        if (r < 0)
                seq = partial; /* written all the same, but the caller must not act */
        if (seq > w->sync_wanted) {
                w->sync_wanted = seq;
                pthread_cond_signal(&w->sync_cond);
        }
        pthread_mutex_unlock(&w->lock);
        if (r == 0)
                *ret_last_seq = seq;
        return r;
}

int audit_wait_durable(AuditWriter *w, uint64_t seq)
{
        int r;

        if (!w)
                return -EINVAL;
        pthread_mutex_lock(&w->lock);
        if (seq > w->last_seq)
                r = -EINVAL; /* never queued */
        else
                r = commit_locked(w, seq);
        pthread_mutex_unlock(&w->lock);
        return r;
}

int audit_seal_now(AuditWriter *w)
{
        int r;

        pthread_mutex_lock(&w->lock);
        if (w->failed)
                r = w->failed;
        else if (w->closed)
                r = -ESHUTDOWN;
        else if (!w->have_key)
                r = -ENOKEY;
        else {
                r = 0;
                if (w->unsealed > 0) {
                        r = seal_locked(w);
                        if (r < 0 && !w->failed)
                                w->failed = r;
                }
                if (r == 0)
                        r = commit_locked(w, w->last_seq);
        }
        pthread_mutex_unlock(&w->lock);
        return r;
}

int audit_failure(AuditWriter *w)
{
        int r;

        pthread_mutex_lock(&w->lock);
        r = w->failed;
        pthread_mutex_unlock(&w->lock);
        return r;
}

void audit_head(AuditWriter *w, uint64_t *ret_seq, char ret_hash[AUDIT_HASH_HEX_LEN + 1])
{
        pthread_mutex_lock(&w->lock);
        if (ret_seq)
                *ret_seq = w->durable_seq;
        if (ret_hash)
                memcpy(ret_hash, w->durable_head, AUDIT_HASH_HEX_LEN + 1);
        pthread_mutex_unlock(&w->lock);
}

int audit_close(AuditWriter *w)
{
        json_t *f;
        int r;

        if (!w)
                return 0;
        pthread_mutex_lock(&w->lock);
        r = w->failed;
        if (r == 0 && !w->closed) {
                f = json_pack("{s:s, s:{s:I}}", "event", AUDIT_EVENT_LOG_CLOSE, "details", "pid",
                              (json_int_t)getpid());
                r = f ? append_locked(w, f, NULL) : -ENOMEM;
                json_decref(f);
                if (r == 0 && w->have_key && w->unsealed > 0)
                        r = seal_locked(w);
                if (r == 0)
                        r = commit_locked(w, w->last_seq);
        }
        w->closed = true;
        w->stopping = true;
        pthread_cond_signal(&w->timer_cond);
        pthread_cond_signal(&w->sync_cond);
        pthread_mutex_unlock(&w->lock);
        if (w->timer_running)
                pthread_join(w->timer, NULL);
        if (w->syncer_running)
                pthread_join(w->syncer, NULL);
        writer_free(w);
        return r;
}
