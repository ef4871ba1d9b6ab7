/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Shared between the sandbox's files; not part of the module's API. */

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/macros.h"
#include "sandbox/sandbox.h"

/*
 * The session helper's report line when it can no longer do its work (its
 * secret watcher and its answers to the open guard): the session is ended.
 */
#define SBX_HELPER_STOPPED                                                                \
        "#the session helper (which watches for new secrets and answers the open guard) " \
        "stopped"
#define SBX_GUARD_FAILED "#the open guard could not answer an open"

/* A path bound into the sandbox at the same place (workspace, --rw, --ro). */
typedef struct {
        char *path; /* canonical absolute host path (no symlink on the way) */
        bool writable;
        bool is_dir;
        bool idmapped; /* root mode: files of the owner appear as the agent's */
        int mount_fd;  /* root mode: a detached mount prepared by the parent, else -EBADF */
} SbxBind;

/* A secret to hide: an existing file or directory, canonical path. */
typedef struct {
        char *path;
        bool is_dir;
} SbxMask;

typedef struct {
        bool v1_pids, v1_memory; /* which limits are enforced by a cgroup */
        char *pids_dir;          /* /sys/fs/cgroup/pids/airlock/SESSION, or NULL */
        char *memory_dir;
        uint64_t pids_max, memory_max;
} SbxCgroup;

/* Landlock as found on this kernel and as it will be applied. */
typedef struct {
        int abi;             /* 0: Landlock unavailable */
        uint64_t fs_handled; /* filesystem rights handled (denied unless granted) */
        uint64_t net_handled;
        uint64_t scoped;
} SbxLandlock;

typedef struct {
        int wd;
        uint32_t dir_hash; /* of dir: the duplicate checks compare strings rarely */
        char *dir;         /* watched directory */
        char *name;        /* glob of the names that are (or lead to) a secret */
        bool final;        /* name is the secret's own (else a directory on the way to it) */
} SbxWatch;

typedef struct {
        dev_t dev;
        ino_t ino;
} SbxInode;

/* Called for each secret that appeared: path, and whether it is the secret itself. */
typedef int (*SbxWatchFn)(const char *path, bool final, void *userdata);

/* Everything prepared by the parent before the clone; read by the children. */
typedef struct {
        const SbxConfig *cfg;
        bool privileged; /* started by root: agent runs as the agent user, idmapped workspace */
        uid_t uid;       /* the agent's uid and gid on the host (== inside: identity map) */
        gid_t gid;
        char *home;
        char **homes;   /* every home in /etc/passwd that exists (canonical), and /root */
        SbxBind *binds; /* binds[0] is the workspace */
        size_t n_binds;
        SbxMask *masks;
        size_t n_masks;
        char **protect;         /* canonical paths inside the workspace kept read-only */
        char **protect_missing; /* --explain: literal protected names absent */
        char **protect_new;     /* placeholders (and their directories) airlock created */
        /* protect_new[i] held open with a shared flock for the session (or -1) */
        int *protect_new_fds;
        size_t n_protect_new_fds;
        char *resolv_conf; /* SBX_NET_HOST: the sandbox's resolv.conf text */
        /* where the resolv.conf goes inside (the host file, or its symlink target in /run) */
        char *resolv_target;
        char **envp;     /* the agent's environment: built with the command (build_env) */
        char **cmd_argv; /* pid 1: the command, received with it (sbx_command_receive) */
        /* pid 1, warm sandbox: detached clone of the broker's session directory, or -EBADF */
        int session_dir_mnt;
        char *session_name;     /* pid 1: the session socket's name in it, or NULL */
        int hold_fd;            /* parent, warm sandbox: the client's connection (borrowed) */
        int sync_w;             /* parent: its end of the socket to pid 1 (borrowed) */
        bool pid1_reaped;       /* parent: sbx_relay() saw pid 1's exit, not only its message */
        bool placeholders_done; /* parent: the session helper's cleanup is over */
        SbxLandlock landlock;
        SbxCgroup cgroup;
        void *seccomp; /* unused: the filter is compiled at build time */
        char **weaker; /* layers missing on this kernel or setup, in words */
        int pty_master, pty_slave;
        int err_fd; /* child -> parent: setup error text; EOF at exec */
        /* the (exiting) process whose user namespace carries the idmap */
        pid_t idmap_helper;
        int inotify_fd; /* watches the secrets' directories during the session */
        SbxWatch *watches;
        size_t n_watches, watches_cap;
        char *secret_appeared; /* set when the session was ended because of it */
        /* the open guard (guard.c): root only */
        char **guard_regions;   /* directories bound onto themselves and marked inside */
        char **guard_submounts; /* host mounts inside a region, marked too */
        int guard_fd;           /* the fanotify group (FAN_OPEN_PERM), or -EBADF */
        int guard_ready;        /* pid 1 -> parent: one byte once it has pivoted */
        bool guard_marked;      /* the marks are in place: the guard is in force */
        SbxInode *guard_inodes; /* the secrets' files, sorted (session helper) */
        size_t n_guard_inodes, guard_inodes_cap;
        size_t guard_remembered; /* allowed files given an ignore mark (session helper) */
        bool guard_forgetful;    /* no more ignore marks: the kernel refused one, or the cap */
        pid_t watcher;           /* the process reading inotify_fd during the session */
        int watch_report;        /* watcher -> parent: the secret that appeared (lines, see
                                    finish_secret_report(); "#..." the session helper failed) */
        int watch_done;          /* parent -> watcher: closed when the session is over */
        int watch_cleaned;       /* watcher -> parent: one byte once the placeholders are gone */
        /* the helper thread of the preparation: the secrets' watches */
        pthread_t prep_thread;
        bool prep_started, prep_done;
        int prep_r;
        SbxError prep_err;
} SbxPlan;

/* Error helper: fills err (if set) and returns r (a negative errno). */
int sbx_fail(SbxError *err, int exit_code, int r, const char *fmt, ...) _printf_(4, 5);

/* Parent-side preparation and teardown (sandbox.c, mounts.c, limits.c, ...). */
int sbx_plan_prepare(SbxPlan *p, const SbxConfig *c, bool for_explain, SbxError *err);
/*
 * sbx_plan_prepare() in two steps: what pid 1 needs at its clone (identity,
 * binds, environment, pty, cgroup), then the secrets' masks and the
 * protected names, which the parent works out while pid 1 sets up its
 * namespaces and sends it with the go (sbx_plan_send / sbx_plan_receive).
 */
int sbx_plan_prepare_launch(SbxPlan *p, const SbxConfig *c, bool for_explain, SbxError *err);
int sbx_plan_prepare_secrets(SbxPlan *p, bool for_explain, SbxError *err);
int sbx_plan_send(const SbxPlan *p, int fd); /* the masks and protected paths, then go */
int sbx_plan_receive(SbxPlan *p, int fd);    /* in pid 1: 0, or -errno (then start nothing) */
/*
 * The command, last, once the sandbox is built (at once for a cold run, at
 * the take for a warm one): argv, the agent's environment, the session
 * socket's name (warm, or NULL) and, as SCM_RIGHTS, the fds for the agent's
 * 0, 1, 2 and its pty slave (n_fds 4) or not (3). Pid 1 puts the fds in place.
 */
int sbx_command_send(int fd, char *const *argv, char *const *envp, const char *session_name,
                     const int *fds, size_t n_fds);
int sbx_command_receive(SbxPlan *p, int fd); /* in pid 1: 0, or -errno (then start nothing) */
void sbx_plan_done(SbxPlan *p);

/* mounts.c */
/* The secret globs (and other mounts of the same files). */
int sbx_expand_secrets(SbxPlan *p, SbxError *err);
/*
 * Starts the helper thread (sbx_watch_secrets); if it cannot start,
 * sbx_prep_thread_join() does the work inline. Join before anything forks;
 * sbx_plan_done() joins too.
 */
void sbx_prep_thread_start(SbxPlan *p);
int sbx_prep_thread_join(SbxPlan *p, SbxError *err); /* 0, or -errno with err filled */
int sbx_prepare_binds(SbxPlan *p, SbxError *err);
/* Waits for the idmapped workspace's user-namespace helper (mounts.c), if any. */
void sbx_reap_idmap_helper(SbxPlan *p);
int sbx_prepare_protect(SbxPlan *p, bool create, SbxError *err);
void sbx_remove_placeholders(SbxPlan *p); /* those this session still owns */
int sbx_prepare_resolv_conf(SbxPlan *p, SbxError *err);
typedef struct {
        int rootfd;    /* the sandbox's root, attached but not yet pivoted into */
        int *bind_fds; /* detached clones of binds[] */
        size_t n_binds;
        int *mask_fds; /* O_PATH fds of secrets opened early, or -EBADF */
        size_t n_masks;
        int session_socket; /* detached clone of the session socket, or -EBADF */
        int session_dir;    /* warm sandbox: detached clone of cfg->session_dir, or -EBADF */
        int *region_fds;    /* O_PATH fds of the open guard's regions */
        size_t n_regions;
} SbxMountsCtx;
/* In the child, with caps in the userns: begin before leaving host uid 0, finish after. */
int sbx_mounts_begin(const SbxPlan *p, SbxMountsCtx *m, SbxError *err);
int sbx_mounts_open_masks(const SbxPlan *p, SbxMountsCtx *m, SbxError *err); /* after the go */
int sbx_mounts_finish(const SbxPlan *p, SbxMountsCtx *m, SbxError *err);
void sbx_mounts_ctx_done(SbxMountsCtx *m);
/* Warm sandbox, in pid 1 with its capabilities, at the take: binds the session socket. */
int sbx_mounts_bind_session(SbxPlan *p, SbxError *err);
int sbx_loopback_up(SbxError *err);
int sbx_watch_secrets(SbxPlan *p, SbxError *err);
int sbx_watch_drain(SbxPlan *p, SbxWatchFn fn, void *userdata);

bool sbx_path_startswith(const char *path, const char *prefix); /* at a '/' boundary */
bool sbx_hidden_by_tmpfs(const SbxPlan *p, const char *path);   /* under /run, /tmp, ... inside */
bool sbx_under_a_bind(const SbxPlan *p, const char *path); /* under the workspace, --rw, --ro */
void sbx_unescape_octal(char *s);                          /* mountinfo's \040 escapes */

/* guard.c: the open guard against secrets that appear during the session (F4) */
/* The regions, the submounts and (not for --explain) the fanotify group. */
int sbx_guard_prepare(SbxPlan *p, bool for_explain, SbxError *err);
void sbx_guard_masks(SbxPlan *p);         /* once the masks are known: drops what they cover */
int sbx_guard_collect_inodes(SbxPlan *p); /* the masked files, by inode */
int sbx_guard_add_inode(SbxPlan *p, const struct stat *st); /* one more (remasked) */
void sbx_guard_forget(SbxPlan *p, const char *path);        /* its file asks again */
int sbx_guard_mark(SbxPlan *p, pid_t pid1, SbxError *err);  /* once pid 1 has pivoted */
int sbx_guard_answer(SbxPlan *p);                           /* answers the pending opens */
bool sbx_guard_is_secret(const SbxPlan *p, const char *path);

/* landlock.c */
int sbx_landlock_probe(SbxPlan *p, SbxError *err);
int sbx_landlock_apply(const SbxPlan *p, SbxError *err); /* in the agent, after no_new_privs */

/* seccomp.c */
int sbx_seccomp_prepare(SbxPlan *p, SbxError *err);
int sbx_seccomp_apply(const SbxPlan *p, SbxError *err);
void sbx_seccomp_free(SbxPlan *p);

/* limits.c */
#define SBX_NO_CGROUP_USER                                                                    \
        "no cgroup (not started by root): pids are limited by RLIMIT_NPROC in the sandbox's " \
        "user namespace, memory only per process by RLIMIT_AS"
#define SBX_NO_CGROUP_V1                                                                    \
        "no cgroup (this host has no cgroup v1 pids and memory controllers): pids are "     \
        "limited by RLIMIT_NPROC in the sandbox's user namespace, memory only per process " \
        "by RLIMIT_AS"
bool sbx_cgroup_v1_available(void); /* root: the v1 pids and memory hierarchies are there */
int sbx_cgroup_prepare(SbxPlan *p, SbxError *err);
int sbx_cgroup_attach(const SbxPlan *p, pid_t pid, SbxError *err);
void sbx_cgroup_cleanup(SbxPlan *p);
int sbx_drop_privileges(const SbxPlan *p, SbxError *err); /* caps, securebits, NNP, rlimits */
int sbx_restore_effective_caps(SbxError *err);
int sbx_limit_address_space(const SbxPlan *p,
                            SbxError *err); /* effective = permitted, after setresuid */

/* pty.c */
int sbx_pty_open(SbxPlan *p, SbxError *err);
int sbx_pty_make_controlling(int slave, SbxError *err); /* in the agent */
/* Relays between the human's terminal and the pty until the child exits; see pty.c. */
int sbx_relay(SbxPlan *p, pid_t child, int *ret_wstatus);

/* selfcheck.c: in the agent, right before exec. */
int sbx_selfcheck(const SbxPlan *p, SbxError *err);

/* child.c: pid 1 of the sandbox; never returns. */
_noreturn_ void sbx_child_main(SbxPlan *p, int sync_fd);

/* The empty file and directory the masks are made of (mounts.c), for the self-check. */
extern dev_t sbx_mask_dev;
extern ino_t sbx_mask_file_ino, sbx_mask_dir_ino;

/* Writes err->message to the error pipe (child side). */
void sbx_report(int fd, const SbxError *err);
