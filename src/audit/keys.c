/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Forward-secure seal keys. The verification key k0 is drawn once and shown
 * to the human; the host only ever stores k_e for the next epoch e >= 1,
 * with k_{e+1} = SHA-256("airlock-evolve-v1" || k_e). A seal of epoch e is
 * HMAC-SHA256 under k_e, after which the writer evolves and wipes k_e, so
 * whoever takes the host later holds no key for any epoch already sealed.
 *
 * Key file (one line, fixed length so an overwrite covers the old bytes):
 *   "airlock-audit-key-v1 ID EPOCH(20 digits) KEYHEX(64) CHECK(16)\n"
 * CHECK is the first 16 hex digits of SHA-256 of everything before " CHECK".
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/audit-internal.h"
#include "common/hash.h"
#include "common/util.h"

#define KEY_MAGIC    "airlock-audit-key-v1"
#define KEY_TMP_FILE AUDIT_KEY_FILE ".new"
#define VKEY_MAGIC   "alvk1"
#define KEY_LINE_LEN (sizeof(KEY_MAGIC) - 1 + 1 + AUDIT_KEYID_LEN + 1 + 20 + 1 + 64 + 1 + 16 + 1)

void audit_key_evolve(uint8_t key[AUDIT_KEY_BYTES])
{
        static const char tag[] = "airlock-evolve-v1";
        crypto_hash_sha256_state st;
        uint8_t next[crypto_hash_sha256_BYTES];

        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, (const unsigned char *)tag, sizeof(tag) - 1);
        crypto_hash_sha256_update(&st, key, AUDIT_KEY_BYTES);
        crypto_hash_sha256_final(&st, next);
        memcpy(key, next, AUDIT_KEY_BYTES);
        explicit_wipe(next, sizeof(next));
        explicit_wipe(&st, sizeof(st));
}

void audit_key_id(const uint8_t k0[AUDIT_KEY_BYTES], char id[AUDIT_KEYID_LEN + 1])
{
        static const char tag[] = "airlock-keyid-v1";
        crypto_hash_sha256_state st;
        uint8_t d[crypto_hash_sha256_BYTES];

        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, (const unsigned char *)tag, sizeof(tag) - 1);
        crypto_hash_sha256_update(&st, k0, AUDIT_KEY_BYTES);
        crypto_hash_sha256_final(&st, d);
        hex_encode(d, AUDIT_KEYID_LEN / 2, id);
        explicit_wipe(&st, sizeof(st));
}

static void check16(const char *text, size_t n, char out[17])
{
        uint8_t d[crypto_hash_sha256_BYTES];

        crypto_hash_sha256(d, (const unsigned char *)text, n);
        hex_encode(d, 8, out);
}

static int unhex(const char *s, size_t n, uint8_t *out)
{
        for (size_t i = 0; i < n; i++) {
                int v = 0;

                for (int j = 0; j < 2; j++) {
                        char c = s[2 * i + j];

                        v <<= 4;
                        if (c >= '0' && c <= '9')
                                v |= c - '0';
                        else if (c >= 'a' && c <= 'f')
                                v |= c - 'a' + 10;
                        else
                                return -EINVAL;
                }
                out[i] = (uint8_t)v;
        }
        return 0;
}

/* "alvk1-ID-K0HEX-CHECK8" */
int audit_vkey_parse(const char *text, uint8_t k0[AUDIT_KEY_BYTES], char id[AUDIT_KEYID_LEN + 1])
{
        const size_t body = sizeof(VKEY_MAGIC) - 1 + 1 + AUDIT_KEYID_LEN + 1 + 64;
        char sum[17], want_id[AUDIT_KEYID_LEN + 1];
        uint8_t k[AUDIT_KEY_BYTES];
        const char *p;

        if (!text || strlen(text) != body + 1 + 8 || !strneq(text, VKEY_MAGIC "-", 6))
                return -EINVAL;
        p = text + 6;
        if (p[AUDIT_KEYID_LEN] != '-' || p[AUDIT_KEYID_LEN + 1 + 64] != '-')
                return -EINVAL;
        check16(text, body, sum);
        if (!strneq(sum, text + body + 1, 8))
                return -EINVAL;
        if (unhex(p + AUDIT_KEYID_LEN + 1, AUDIT_KEY_BYTES, k) < 0)
                return -EINVAL;
        audit_key_id(k, want_id);
        if (!strneq(want_id, p, AUDIT_KEYID_LEN)) {
                explicit_wipe(k, sizeof(k));
                return -EINVAL;
        }
        memcpy(k0, k, AUDIT_KEY_BYTES);
        memcpy(id, want_id, AUDIT_KEYID_LEN + 1);
        explicit_wipe(k, sizeof(k));
        return 0;
}

static int key_format(const AuditKeyState *k, char out[KEY_LINE_LEN + 1])
{
        char hex[65], sum[17];
        int n;

        hex_encode(k->key, AUDIT_KEY_BYTES, hex);
        n = snprintf(out, KEY_LINE_LEN + 1, KEY_MAGIC " %s %020llu %s ", k->id,
                     (unsigned long long)k->epoch, hex);
        explicit_wipe(hex, sizeof(hex));
        if (n < 0 || (size_t)n != KEY_LINE_LEN - 17)
                return -EINVAL;
        check16(out, (size_t)n - 1, sum);
        memcpy(out + n, sum, 16);
        out[n + 16] = '\n';
        out[n + 17] = '\0';
        return 0;
}

static int key_parse(const char *buf, size_t n, AuditKeyState *ret)
{
        const size_t pre = sizeof(KEY_MAGIC) - 1;
        char sum[17];
        const char *p;
        uint64_t epoch;
        char num[21];

        if (n != KEY_LINE_LEN || buf[n - 1] != '\n' || !strneq(buf, KEY_MAGIC " ", pre + 1))
                return -EKEYREJECTED;
        check16(buf, KEY_LINE_LEN - 18, sum);
        if (!strneq(sum, buf + KEY_LINE_LEN - 17, 16))
                return -EKEYREJECTED;
        p = buf + pre + 1;
        memcpy(ret->id, p, AUDIT_KEYID_LEN);
        ret->id[AUDIT_KEYID_LEN] = '\0';
        p += AUDIT_KEYID_LEN + 1;
        memcpy(num, p, 20);
        num[20] = '\0';
        if (parse_u64(num, UINT64_MAX, &epoch) < 0 || epoch < 1)
                return -EKEYREJECTED;
        ret->epoch = epoch;
        p += 21;
        if (unhex(p, AUDIT_KEY_BYTES, ret->key) < 0)
                return -EKEYREJECTED;
        return 0;
}

static int key_read(int dir_fd, const char *name, AuditKeyState *ret)
{
        _cleanup_close_ int fd = -EBADF;
        char buf[KEY_LINE_LEN + 2];
        ssize_t n;
        int r;

        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, sizeof(buf));
        if (n < 0)
                return negative_errno();
        r = key_parse(buf, (size_t)n, ret);
        explicit_wipe(buf, sizeof(buf));
        return r;
}

static int fsync_dir(int dir_fd);

/* Wipes the old key in place (if any), then moves audit.key.new over it. */
static int finish_store(int dir_fd)
{
        _cleanup_close_ int old = -EBADF;

        old = openat(dir_fd, AUDIT_KEY_FILE, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (old >= 0) {
                char zeros[KEY_LINE_LEN] = { 0 };

                if (pwrite(old, zeros, sizeof(zeros), 0) != (ssize_t)sizeof(zeros) ||
                    fdatasync(old) < 0)
                        return negative_errno();
        } else if (errno != ENOENT)
                return negative_errno();
        if (renameat(dir_fd, KEY_TMP_FILE, dir_fd, AUDIT_KEY_FILE) < 0)
                return negative_errno();
        return fsync_dir(dir_fd);
}

int audit_key_load(int dir_fd, AuditKeyState *ret)
{
        AuditKeyState a = { 0 }, b = { 0 };
        int ra, rb, r;

        ra = key_read(dir_fd, AUDIT_KEY_FILE, &a);
        rb = key_read(dir_fd, KEY_TMP_FILE, &b);
        if (ra == -ENOENT && rb == -ENOENT)
                return -ENOENT;
        if (rb == 0 && (ra < 0 || (streq(a.id, b.id) && b.epoch > a.epoch))) {
                /* A store was interrupted after the new key was synced: finish it. The
                 * new file is the only copy of the key now: rename it, never rewrite it. */
                r = finish_store(dir_fd);
                if (r < 0)
                        goto out;
                *ret = b;
                r = 0;
                goto out;
        }
        if (ra < 0) {
                r = ra == -ENOENT ? -EKEYREJECTED : ra;
                goto out;
        }
        *ret = a;
        r = 0;
out:
        explicit_wipe(&a, sizeof(a));
        explicit_wipe(&b, sizeof(b));
        return r;
}

static int fsync_dir(int dir_fd)
{
        return fsync(dir_fd) < 0 ? negative_errno() : 0;
}

int audit_key_store(int dir_fd, const AuditKeyState *k, bool create)
{
        char line[KEY_LINE_LEN + 1];
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = key_format(k, line);
        if (r < 0)
                return r;
        if (create) {
                /* setup-keys: a new key may never replace an existing one. */
                fd = openat(dir_fd, AUDIT_KEY_FILE,
                            O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0) {
                        r = negative_errno();
                        goto out;
                }
                r = write_all(fd, line, KEY_LINE_LEN);
                if (r == 0 && fsync(fd) < 0)
                        r = negative_errno();
                if (r == 0)
                        r = fsync_dir(dir_fd);
                goto out;
        }
        fd = openat(dir_fd, KEY_TMP_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                    0600);
        if (fd < 0) {
                r = negative_errno();
                goto out;
        }
        r = write_all(fd, line, KEY_LINE_LEN);
        if (r == 0 && fdatasync(fd) < 0)
                r = negative_errno();
        if (r < 0)
                goto out;
        /* Overwrite the old key's bytes in place before the rename frees them. */
        r = finish_store(dir_fd);
out:
        explicit_wipe(line, sizeof(line));
        return r;
}

int audit_state_dir_open(const char *state_dir, bool create)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (isempty(state_dir))
                return -EINVAL;
        if (create && mkdir(state_dir, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        /* Only its owner may add or replace files in the log's directory. */
        if (st.st_uid != geteuid() || (st.st_mode & 022))
                return -EPERM;
        return TAKE_FD(fd);
}

int audit_setup_keys(const char *state_dir, char ret_vkey[AUDIT_VKEY_MAX])
{
        _cleanup_close_ int dir_fd = -EBADF;
        AuditKeyState k = { 0 };
        uint8_t k0[AUDIT_KEY_BYTES];
        char hex[65], sum[17], text[AUDIT_VKEY_MAX], id[AUDIT_KEYID_LEN + 1];
        struct stat st;
        int r, n;

        if (sodium_init() < 0)
                return -EIO;
        dir_fd = audit_state_dir_open(state_dir, true);
        if (dir_fd < 0)
                return dir_fd;
        if (fstatat(dir_fd, AUDIT_KEY_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
            fstatat(dir_fd, KEY_TMP_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return -EEXIST;
        /* A log sealed under an earlier key cannot continue under a new one. */
        {
                _cleanup_free_ char *buf = NULL;
                _cleanup_close_ int fd =
                        openat(dir_fd, AUDIT_LOG_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

                if (fd >= 0) {
                        static const char needle[] = "\"event\":\"seal\"";
                        size_t len = 0;

                        r = read_full_fd(fd, 16ULL << 30, &buf, &len);
                        if (r < 0)
                                return r;
                        if (memmem(buf, len, needle, sizeof(needle) - 1))
                                return -EEXIST;
                }
        }
        randombytes_buf(k0, sizeof(k0));
        audit_key_id(k0, id);
        memcpy(k.id, id, sizeof(id));
        memcpy(k.key, k0, sizeof(k0));
        audit_key_evolve(k.key);
        k.epoch = 1;
        r = audit_key_store(dir_fd, &k, true);
        explicit_wipe(&k, sizeof(k));
        if (r < 0) {
                explicit_wipe(k0, sizeof(k0));
                return r == -EEXIST ? -EEXIST : r;
        }
        hex_encode(k0, sizeof(k0), hex);
        explicit_wipe(k0, sizeof(k0));
        n = snprintf(text, sizeof(text), VKEY_MAGIC "-%s-%s", id, hex);
        explicit_wipe(hex, sizeof(hex));
        if (n < 0 || (size_t)n + 1 + 8 + 1 > sizeof(text))
                return -EINVAL;
        check16(text, (size_t)n, sum);
        snprintf(text + n, sizeof(text) - (size_t)n, "-%.8s", sum);
        memcpy(ret_vkey, text, AUDIT_VKEY_MAX);
        explicit_wipe(text, sizeof(text));
        return 0;
}
