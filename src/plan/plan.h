/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * airlock plan (issue 6): a true dry run. The command runs for real, as the
 * user the real execution would use, in a copy-on-write snapshot of the
 * host: a user namespace mapping every id to itself (so uid 0 owns what root
 * owns, but holds no capability over the host's kernel objects), its own
 * mount, network (loopback only), pid, ipc and uts namespaces, and an
 * overlay (upper layer on tmpfs) over each real filesystem. A seccomp
 * user-notification supervisor outside the snapshot records what the
 * command tries beyond files (connects, datagrams, execs, signals) and
 * refuses whatever would leave the snapshot; fanotify on the secrets' inodes
 * records every open of a secret, whatever path was used. When the command
 * has ended, the overlays' upper layers are the file effects.
 *
 * The same recorder, without refusing anything and without a snapshot,
 * observes an approved real execution, so the broker can compare what
 * happened with what was approved (plan_compare()).
 *
 * Ownership: a PlanResult is owned by its creator and freed with
 * plan_result_free(); every string and array in it belongs to it.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macros.h"
#include "policy/policy.h"

#define PLAN_DEFAULT_TIMEOUT_USEC (120ULL * 1000000ULL)   /* a plan that runs longer is stopped */
#define PLAN_DEFAULT_OUTPUT_MAX   (64 * 1024)             /* command output kept in the plan */
#define PLAN_DEFAULT_DIFF_MAX     (16 * 1024)             /* unified diff kept per file */
#define PLAN_DEFAULT_TMPFS_MAX    (1024ULL * 1024 * 1024) /* size of the upper-layer tmpfs */

typedef enum {
        PLAN_FILE_CREATED,
        PLAN_FILE_MODIFIED, /* content, mode, owner or link target changed (see the flags) */
        PLAN_FILE_DELETED,
        PLAN_FILE_RENAMED, /* deleted at renamed_from and created at path with the same content */
} PlanFileChange;

typedef struct {
        char *path;         /* absolute, as the host sees it */
        char *renamed_from; /* PLAN_FILE_RENAMED only */
        PlanFileChange change;
        char type; /* 'f' file, 'd' directory, 'l' symlink, 'c', 'b', 'p', 's' */
        bool content_changed, mode_changed, owner_changed;
        /* before (absent for CREATED) and after (absent for DELETED) */
        mode_t old_mode, new_mode; /* permission bits and type */
        uid_t old_uid, new_uid;
        gid_t old_gid, new_gid;
        uint64_t old_size, new_size;
        char *link_target; /* symlinks: the new target */
        /*
         * Text files: a unified diff ("--- a/PATH", "+++ b/PATH", hunks),
         * cut at the plan's diff_max with diff_truncated set. NULL for
         * binaries, directories, unchanged content, and for any file that
         * holds a secret's bytes (never shown).
         */
        char *diff;
        bool diff_truncated;
        /* Binaries: "binary, 1024 → 2048 bytes, sha256 ab12…→cd34…"; NULL otherwise. */
        char *summary;
        /* The secret whose bytes (raw, hex or base64) this file now holds; NULL if none. */
        char *secret_content;
} PlanFile;

typedef struct {
        char *path;    /* the secret, absolute */
        char *program; /* the program that opened it (/proc/PID/exe of the opener), may be NULL */
        bool write;    /* opened for writing */
} PlanSecretAccess;

typedef enum {
        PLAN_NET_CONNECT,
        PLAN_NET_SEND, /* sendto/sendmsg with an address (datagrams, DNS over UDP) */
} PlanNetKind;

typedef struct {
        PlanNetKind kind;
        int family;        /* AF_INET, AF_INET6, AF_UNIX, ... */
        int socktype;      /* SOCK_STREAM, SOCK_DGRAM, ... (0 if unknown) */
        char *address;     /* IP literal; for AF_UNIX the path ('@' first: abstract) */
        uint16_t port;     /* 0 for AF_UNIX */
        char *host;        /* the inventory host of the address, NULL = outside the inventory */
        char *environment; /* that host's environment, NULL if none */
        char *program;     /* /proc/PID/exe of the caller, may be NULL */
        bool blocked;      /* refused by the plan: shown as intent, not observed */
} PlanNet;

typedef struct {
        char **argv; /* as read from the caller's memory at exec time */
        char *path;  /* the file being executed (the exec call's path argument) */
} PlanExec;

typedef struct {
        int sig;
        pid_t target;  /* as the command saw it (inside its pid namespace) */
        char *program; /* the sender */
        bool blocked;
} PlanSignal;

typedef struct {
        char *daemon;   /* "systemd", "dbus", "corosync", "docker", a unit, ... */
        char *meaning;  /* "restarts corosync.service"; NULL if unknown */
        char *evidence; /* "exec systemctl restart corosync", "connect /run/systemd/private" */
        bool blocked;
} PlanContact;

typedef struct {
        /* What was planned. */
        char **argv;
        char **envp;
        char *cwd;
        uid_t uid;
        gid_t gid;
        char *host; /* target host; NULL = local */

        /*
         * Fidelity: complete when only file effects happened and all were
         * observed; partial when something was attempted that the plan had
         * to refuse (a connection, a daemon contact, a signal outside, ...)
         * or could not observe (a timeout, a remote host). fidelity_reasons
         * says why, one line each.
         */
        bool complete;
        char **fidelity_reasons;

        int exit_status; /* as waitpid() reports it: WIFEXITED etc. apply */
        bool timed_out;  /* stopped after the timeout */
        char *output;    /* stdout+stderr, interleaved, cut at output_max */
        size_t output_size;
        bool output_truncated;
        bool output_withheld; /* the command read a secret: output not kept */

        PlanFile *files;
        size_t n_files;
        PlanSecretAccess *secrets; /* secrets opened */
        size_t n_secrets;
        PlanNet *net;
        size_t n_net;
        PlanExec *execs;
        size_t n_execs;
        PlanSignal *signals;
        size_t n_signals;
        PlanContact *contacts;
        size_t n_contacts;

        uint64_t duration_usec;
        char digest[65]; /* sha256 of the canonical JSON of the effects and what was planned */
} PlanResult;

typedef struct {
        char *const *argv; /* the command (NULL-terminated, non-empty) */
        char *const *envp; /* its environment (NULL-terminated) */
        const char *cwd;   /* NULL = "/" */
        uid_t uid;         /* the run-as user of the real execution */
        gid_t gid;
        const char *host;     /* NULL = local; else argv is run through the host's connect prefix */
        const Policy *policy; /* secrets, inventory (names resolve to inventory addresses) */
        uint64_t timeout_usec; /* 0 = PLAN_DEFAULT_TIMEOUT_USEC */
        size_t output_max;     /* 0 = PLAN_DEFAULT_OUTPUT_MAX */
        size_t diff_max;       /* 0 = PLAN_DEFAULT_DIFF_MAX */
        uint64_t tmpfs_max;    /* 0 = PLAN_DEFAULT_TMPFS_MAX */
} PlanOptions;

/*
 * Plans a command. Must run as root (uid 0 with CAP_SYS_ADMIN) in the
 * initial user namespace. Returns 0 and *ret, or a negative errno with a
 * message ("what went wrong — how to fix it") in err. A plan never changes
 * the host: no file, process or mount is left behind, on success or failure.
 */
int plan_run(const PlanOptions *o, PlanResult **ret, char *err, size_t err_size);

/*
 * plan_run() in a new image of helper (which must call plan_helper_main()
 * when started with the one argument "--plan-helper"), for a caller with
 * threads: see isolated.c. Same results and errors as plan_run(). The
 * policy must have been loaded from text (policy->text).
 */
int plan_run_isolated(const PlanOptions *o, const char *helper, PlanResult **ret, char *err,
                      size_t err_size);
/* The helper's side of plan_run_isolated(). Returns the process's exit status. */
int plan_helper_main(void);

PlanResult *plan_result_free(PlanResult *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(PlanResult *, plan_result_free)

/* The plan as JSON (schema in airlock(1), "PLAN FORMAT"). New reference. */
json_t *plan_result_to_json(const PlanResult *r);
/* Reads back what plan_result_to_json() wrote. Returns 0 or -EINVAL. */
int plan_result_from_json(const json_t *j, PlanResult **ret);

/*
 * Writes the plan for an approver: fidelity first, then secrets, network,
 * daemons, files (with diffs), programs. Every string that came from the
 * command or the filesystem is escaped for the terminal.
 */
void plan_result_print(FILE *f, const PlanResult *r);

/* The effects in the policy's terms. Borrowed from r: valid while r lives. */
typedef struct {
        PolicyEffects effects;
        /* storage behind effects */
        char **secrets_read, **secret_content_written, **writes, **deletes, **contacts;
        PolicyConnection *connections;
} PlanPolicyEffects;

int plan_policy_effects(const PlanResult *r, PlanPolicyEffects *ret);
void plan_policy_effects_done(PlanPolicyEffects *e);

/*
 * Recording a real execution (the broker, after approval). The child
 * calls plan_record_child() right before execve(): it installs the recording
 * seccomp filter and hands the listener to the parent through sock (one end
 * of a socketpair(AF_UNIX, SOCK_STREAM) made before fork). The parent calls
 * plan_record_start() with the other end, then plan_record_finish() when the
 * child has exited, getting the observed effects: secrets opened, files
 * changed (from the paths of the calls that change files), connections,
 * execs, signals, daemons. Nothing is refused.
 * The command's processes keep the filter for life: a continuer process
 * (supervisor.c) answers for them when the recorder cannot (the caller
 * died, or plan_record_finish() found processes still running).
 */
typedef struct PlanRecorder PlanRecorder;
int plan_record_child(int sock);
int plan_record_start(const Policy *policy, pid_t child, int sock, PlanRecorder **ret, char *err,
                      size_t err_size);
int plan_record_finish(PlanRecorder *rec, PlanResult **ret_observed);
PlanRecorder *plan_recorder_free(PlanRecorder *rec);
DEFINE_TRIVIAL_CLEANUP_FUNC(PlanRecorder *, plan_recorder_free)

/*
 * Compares an approved plan with what the execution did. Returns the
 * number of deviations (0 = none) and, in *ret (strv, may be NULL when 0),
 * one line each: "wrote /etc/x (not in the plan)", "connected to
 * 198.51.100.9:22 (not in the plan)", "read secret /etc/corosync/authkey (not
 * in the plan)". Effects the plan had but the execution did not are not
 * deviations. Returns -ENOMEM on allocation failure.
 */
int plan_compare(const PlanResult *approved, const PlanResult *observed, char ***ret);
