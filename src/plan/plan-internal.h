/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The parts of the plan module, and who calls whom:
 *
 *   plan.c        plan_run(): orchestration; JSON, printing, digest, policy view
 *   snapshot.c    the namespaces and overlays; runs the command inside
 *   files.c       the file effects, from the overlays' upper layers
 *   supervisor.c  seccomp user-notification (connects, sends, execs, signals)
 *                 and fanotify (secret opens); refuse or record mode
 *   meaning.c     what an exec or a socket means for a daemon
 *   fingerprint.c a secret's bytes recognised wherever they land
 *   diff.c        unified diffs and binary summaries
 *   compare.c     plan against observed execution
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plan/plan.h"

/* ---- result building (plan.c) ---- */

/* Appending to a PlanResult's arrays. Each returns 0 or -ENOMEM; the
 * strings are copied. */
int plan_result_add_file(PlanResult *r, const PlanFile *f); /* takes ownership of f's strings */
int plan_result_add_secret(PlanResult *r, const char *path, const char *program, bool write);
int plan_result_add_net(PlanResult *r, const PlanNet *n); /* copies */
int plan_result_add_exec(PlanResult *r, char *const *argv, const char *path);
int plan_result_add_signal(PlanResult *r, int sig, pid_t target, const char *program, bool blocked);
int plan_result_add_contact(PlanResult *r, const char *daemon, const char *meaning,
                            const char *evidence, bool blocked);
/* Marks the plan partial with a reason (copied; duplicates are kept once). */
int plan_result_partial(PlanResult *r, const char *reason);

/* ---- files.c ---- */

/* The PlanFile.type letter of a mode: 'f', 'd', 'l', 'c', 'b', 'p', 's', '?' if none. */
char plan_file_type(mode_t m);

/* ---- supervisor.c ---- */

typedef enum {
        PLAN_SUP_REFUSE, /* snapshot: connects and sends are refused (and recorded) */
        PLAN_SUP_RECORD, /* real execution: everything is recorded, nothing refused */
} PlanSupMode;

/*
 * Child side, right before execve(): sets no_new_privs if needed, installs
 * the seccomp filter with a user-notification listener, and hands the
 * listener to the supervisor over sock (it writes the fd number, the
 * supervisor takes the fd with pidfd_getfd() and acknowledges; sendmsg with
 * SCM_RIGHTS would itself wait on the listener), then closes its copy.
 * Returns 0 or -errno (then do not exec). Async-signal-safe enough for use
 * after fork(): no malloc.
 */
int plan_sup_child(PlanSupMode mode, int sock);

typedef struct PlanSup PlanSup;

/*
 * Parent side. policy gives the secrets and the inventory. Starts a thread
 * that receives the listener from sock and serves notifications until every
 * process holding the filter has gone. Results go into r (locked by the
 * supervisor while it writes; read r only after plan_sup_stop()).
 */
int plan_sup_start(PlanSupMode mode, const Policy *policy, int sock, PlanResult *r, PlanSup **ret,
                   char *err, size_t err_size);

/*
 * Watches every existing secret of the policy for opens (fanotify inode
 * marks), as seen from root_fd: a directory fd of the command's root (the
 * snapshot's root in refuse mode, "/" in record mode). Call before the
 * command starts. Returns 0 or -errno with a message in err.
 */
int plan_sup_watch_secrets(PlanSup *s, int root_fd, char *err, size_t err_size);

/* Waits for the thread (the command and all its descendants have exited). */
int plan_sup_stop(PlanSup *s);
PlanSup *plan_sup_free(PlanSup *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(PlanSup *, plan_sup_free)

/* ---- meaning.c ---- */

/*
 * What an exec means for a daemon: "systemctl restart corosync" gives daemon
 * "corosync.service", meaning "restarts corosync.service"; "pvecm ..." and
 * "corosync-cfgtool ..." give "corosync". Returns 1 with *ret_daemon and
 * *ret_meaning (malloc'd) when known, 0 when the exec means nothing known,
 * -ENOMEM.
 */
int plan_meaning_exec(char *const *argv, char **ret_daemon, char **ret_meaning);
/*
 * The same for the nth daemon a command names ("systemctl restart a b":
 * nth 0 is a.service, nth 1 is b.service): callers loop from 0 until it
 * returns 0, so that no unit of a command goes unrecorded.
 */
int plan_meaning_exec_nth(char *const *argv, size_t nth, char **ret_daemon, char **ret_meaning);

/*
 * The daemon behind a unix socket path ("/run/systemd/private" → "systemd",
 * "/run/dbus/system_bus_socket" → "dbus", "/var/run/docker.sock" → "docker",
 * libqb/corosync names → "corosync"). Returns a static string or NULL.
 */
const char *plan_meaning_socket(const char *path);

/* ---- fingerprint.c ---- */

typedef struct PlanFingerprints PlanFingerprints;

PlanFingerprints *plan_fp_new(void);
PlanFingerprints *plan_fp_free(PlanFingerprints *fp);
DEFINE_TRIVIAL_CLEANUP_FUNC(PlanFingerprints *, plan_fp_free)

/* Adds a secret's content (kept only as keyed hashes of its windows, never
 * the bytes). Secrets under 32 bytes are matched whole; under 8 bytes they
 * are not fingerprinted (they would match everywhere); past 1 MiB only the
 * first MiB is. Returns 0, -ENOMEM, -E2BIG (too many windows in all). */
int plan_fp_add(PlanFingerprints *fp, const char *secret_path, const void *data, size_t len);

/*
 * The secret whose bytes data holds (a run of at least 32 bytes of it, or
 * all of it if shorter; raw, lowercase/uppercase hex, or base64 at any
 * alignment), or NULL. The returned string is owned by fp.
 */
const char *plan_fp_scan(const PlanFingerprints *fp, const void *data, size_t len);

/* ---- diff.c ---- */

/* True if buf looks like text (no NUL, valid enough UTF-8, few control bytes). */
bool plan_is_text(const void *buf, size_t len);

/*
 * A unified diff (3 lines of context) of a → b with the headers
 * "--- a/PATH" and "+++ b/PATH" (path may be NULL for /dev/null on either
 * side: pass a_path NULL for a created file). Cut at max bytes (then
 * *truncated is set). Returns 0 and *ret (malloc'd; "" when equal) or
 * -ENOMEM / -E2BIG when the inputs are too large to diff (> 8 MiB each).
 */
int plan_diff(const char *a, size_t a_len, const char *b, size_t b_len, const char *a_path,
              const char *b_path, size_t max, char **ret, bool *truncated);

/* "binary, 1024 → 2048 bytes, sha256 ab12cd34… → ef56…" (either side may be absent). */
char *plan_binary_summary(const void *a, size_t a_len, bool a_exists, const void *b, size_t b_len,
                          bool b_exists);

/* Writes the message (printf-style) into err, when given, and returns r. */
int plan_fail(char *err, size_t err_size, int r, const char *fmt, ...) _printf_(4, 5);

/* ---- snapshot.c / files.c ---- */

/*
 * Everything plan_run() needs from the snapshot: it is built in a child
 * (the pid namespace's init), which runs the command, collects the file
 * effects from the upper layers, and sends them to the parent as JSON over
 * a pipe. The details are private to snapshot.c and files.c.
 */

/* What plan_run() hands to the snapshot child (all borrowed). */
typedef struct {
        const PlanOptions *o;
        char *const *argv; /* what runs: o->argv, behind the host's connect prefix for --host */
        gid_t *groups;     /* supplementary groups of the run-as user (resolved before fork) */
        size_t n_groups;
        char **secret_globs; /* policy_secret_globs() of o->policy */
        char *hosts_extra;   /* lines appended to the snapshot's /etc/hosts; may be NULL */
        int ctl_fd;          /* child → parent: the builder's pid, then 'R' or 'E'+message */
        int go_fd;           /* parent → child: one byte when the supervisor watches */
        int out_fd;          /* the command's stdout and stderr */
        int effects_fd;      /* the builder's JSON (a PlanResult) */
        int sup_fd;          /* plan_sup_child()'s end of the supervisor socketpair */
} PlanSnapshotArgs;

/* The forked child of plan_run(): builds the snapshot, runs, reports. Never returns. */
_noreturn_ void plan_snapshot_main(const PlanSnapshotArgs *a);

/*
 * files.c: the file effects of overlay layers. The core compares an upper
 * directory with a lower one, so it also runs (in the unit test) on two
 * plain directories. Whiteouts (char 0:0) and opaque directories
 * (user.overlay.opaque) are understood. policy (may be NULL) says which
 * paths are secrets (never diffed), fp (may be NULL) recognises secret
 * bytes; both are borrowed. diff_max caps each diff, diff_total all of them
 * together (later files get no diff, with diff_truncated set).
 */
typedef struct PlanFiles PlanFiles;
PlanFiles *plan_files_new(const Policy *policy, const PlanFingerprints *fp, size_t diff_max,
                          size_t diff_total);
PlanFiles *plan_files_free(PlanFiles *pf);
DEFINE_TRIVIAL_CLEANUP_FUNC(PlanFiles *, plan_files_free)
/* The content path (absolute) had when the command started, when it is not the lower's. */
int plan_files_set_baseline(PlanFiles *pf, const char *path, const void *data, size_t len);
/* One layer mounted at prefix ("/", "/run"); the fds are duplicated. Returns 0 or -errno. */
int plan_files_walk(PlanFiles *pf, int upper_fd, int lower_fd, const char *prefix);
/* Pairs renames, sorts by path, and moves every effect into r. Returns 0 or -errno. */
int plan_files_finish(PlanFiles *pf, PlanResult *r);
