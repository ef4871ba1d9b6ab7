/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Privileges and resources: capabilities (every set), securebits,
 * no_new_privs, rlimits, and the cgroup holding the session's pids and
 * memory limits.
 *
 * This machine has cgroup v1 controllers (pids, memory) and a v2 unified
 * tree without controllers; limits need the controllers, so airlock uses
 * v1 pids and memory when it can create cgroups there (started by root).
 * Inside a fresh user namespace RLIMIT_NPROC also counts only the
 * sandbox's own processes (per-namespace ucounts), so it is set as well:
 * it is the pids limit when no cgroup can be made. A host without the v1
 * controllers (cgroup v2 only, as systemd sets Debian 12 up) refuses a
 * root launch unless --allow-weaker, which then limits as for an ordinary
 * user (RLIMIT_NPROC, RLIMIT_AS per process).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/securebits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox-internal.h"

#define CG_PIDS   "/sys/fs/cgroup/pids"
#define CG_MEMORY "/sys/fs/cgroup/memory"

/* A v1 hierarchy is mounted there (not a bare directory of the tmpfs above) and we may write it. */
static bool v1_controller(const char *dir)
{
        struct statfs s;

        return statfs(dir, &s) == 0 && s.f_type == CGROUP_SUPER_MAGIC && access(dir, W_OK) == 0;
}

bool sbx_cgroup_v1_available(void)
{
        return v1_controller(CG_PIDS) && v1_controller(CG_MEMORY);
}

static int write_string(const char *dir, const char *file, const char *value)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        if (asprintf(&path, "%s/%s", dir, file) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, value, strlen(value)) < 0)
                return -errno;
        return 0;
}

/*
 * Sessions whose airlock was SIGKILLed leave an empty cgroup (the kernel
 * killed their processes with pid 1): remove those. rmdir fails with EBUSY
 * on a cgroup still in use, so a live session is never touched.
 */
static void remove_stale(const char *parent)
{
        _cleanup_close_ int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d)
                return;
        fd = -EBADF;
        /* Only old ones: a session being set up right now has an empty cgroup too. */
        time_t limit = time(NULL) - 60;
        while ((de = readdir(d))) {
                struct stat st;
                if (de->d_type != DT_DIR || strlen(de->d_name) != 32 ||
                    fstatat(dirfd(d), de->d_name, &st, 0) < 0 || st.st_ctime > limit)
                        continue;
                (void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
        }
        closedir(d);
}

static int make_cgroup(const char *root, const char *session, char **ret)
{
        _cleanup_free_ char *parent = NULL, *dir = NULL;

        if (asprintf(&parent, "%s/airlock", root) < 0 ||
            asprintf(&dir, "%s/airlock/%s", root, session) < 0)
                return -ENOMEM;
        if (mkdir(parent, 0755) < 0) {
                if (errno != EEXIST)
                        return -errno;
                remove_stale(parent);
        }
        if (mkdir(dir, 0755) < 0)
                return -errno;
        *ret = TAKE_PTR(dir);
        return 0;
}

int sbx_cgroup_prepare(SbxPlan *p, SbxError *err)
{
        SbxCgroup *cg = &p->cgroup;
        char v[32];
        int r;

        cg->pids_max = p->cfg->pids_max ? p->cfg->pids_max : SBX_DEFAULT_PIDS_MAX;
        cg->memory_max = p->cfg->memory_max ? p->cfg->memory_max : SBX_DEFAULT_MEMORY_MAX;
        if (!p->privileged) {
                /* No delegated cgroup for an ordinary user here: RLIMIT_NPROC and RLIMIT_AS. */
                return strv_extend(&p->weaker, SBX_NO_CGROUP_USER);
        }
        if (!sbx_cgroup_v1_available()) {
                if (!p->cfg->allow_weaker)
                        return sbx_fail(err, 71, -EOPNOTSUPP,
                                        "no cgroup v1 pids and memory controllers at " CG_PIDS
                                        " and " CG_MEMORY " (a host with cgroup v2 only: airlock "
                                        "does not use v2 yet) — refusing to start; pass "
                                        "--allow-weaker to limit the sandbox by RLIMIT_NPROC in "
                                        "its user namespace and its memory per process by "
                                        "RLIMIT_AS instead");
                return strv_extend(&p->weaker, SBX_NO_CGROUP_V1);
        }
        r = make_cgroup(CG_PIDS, p->cfg->session_id, &cg->pids_dir);
        if (r < 0)
                return sbx_fail(err, 71, r,
                                "cannot create the pids cgroup under " CG_PIDS "/airlock: %s — "
                                "is the v1 pids controller mounted?",
                                strerror(-r));
        snprintf(v, sizeof v, "%ju", (uintmax_t)cg->pids_max);
        r = write_string(cg->pids_dir, "pids.max", v);
        if (r < 0)
                return sbx_fail(err, 71, r, "cannot set pids.max in %s: %s", cg->pids_dir,
                                strerror(-r));
        cg->v1_pids = true;
        r = make_cgroup(CG_MEMORY, p->cfg->session_id, &cg->memory_dir);
        if (r < 0)
                return sbx_fail(err, 71, r,
                                "cannot create the memory cgroup under " CG_MEMORY "/airlock: %s",
                                strerror(-r));
        snprintf(v, sizeof v, "%ju", (uintmax_t)cg->memory_max);
        r = write_string(cg->memory_dir, "memory.limit_in_bytes", v);
        if (r < 0)
                return sbx_fail(err, 71, r, "cannot set the memory limit in %s: %s", cg->memory_dir,
                                strerror(-r));
        /* Swap counts too where swap accounting exists (no escape into swap). */
        (void)write_string(cg->memory_dir, "memory.memsw.limit_in_bytes", v);
        cg->v1_memory = true;
        return 0;
}

int sbx_cgroup_attach(const SbxPlan *p, pid_t pid, SbxError *err)
{
        char v[32];
        int r;

        snprintf(v, sizeof v, "%d", (int)pid);
        if (p->cgroup.pids_dir) {
                r = write_string(p->cgroup.pids_dir, "cgroup.procs", v);
                if (r < 0)
                        return sbx_fail(err, 71, r, "cannot move the sandbox into %s: %s",
                                        p->cgroup.pids_dir, strerror(-r));
        }
        if (p->cgroup.memory_dir) {
                r = write_string(p->cgroup.memory_dir, "cgroup.procs", v);
                if (r < 0)
                        return sbx_fail(err, 71, r, "cannot move the sandbox into %s: %s",
                                        p->cgroup.memory_dir, strerror(-r));
        }
        return 0;
}

/* Kills whatever is left in dir (nothing, normally: pid 1's death killed it) and removes it. */
static void cgroup_remove(char **dir)
{
        if (!*dir)
                return;
        for (int attempt = 0; attempt < 50; attempt++) {
                _cleanup_free_ char *procs = NULL, *path = NULL;
                bool any = false;

                if (asprintf(&path, "%s/cgroup.procs", *dir) < 0)
                        break;
                if (read_full_file(path, 1024 * 1024, &procs, NULL) < 0)
                        break;
                for (char *s = procs, *e; *s; s = e) {
                        long pid = strtol(s, &e, 10);
                        if (e == s)
                                break;
                        if (pid > 0) {
                                kill((pid_t)pid, SIGKILL);
                                any = true;
                        }
                }
                if (!any && rmdir(*dir) == 0)
                        break;
                if (!any && errno != EBUSY)
                        break;
                usleep(2000);
        }
        free(*dir);
        *dir = NULL;
}

void sbx_cgroup_cleanup(SbxPlan *p)
{
        cgroup_remove(&p->cgroup.pids_dir);
        cgroup_remove(&p->cgroup.memory_dir);
}

static int last_cap(void)
{
        _cleanup_free_ char *s = NULL;
        uint64_t v;

        if (read_full_file("/proc/sys/kernel/cap_last_cap", 64, &s, NULL) < 0)
                return 63;
        s[strcspn(s, "\n")] = '\0';
        if (parse_u64(s, 63, &v) < 0)
                return 63;
        return (int)v;
}

/*
 * Called in pid 1 of the sandbox after the mounts, so that it and the agent
 * it forks hold nothing: securebits locked first (needs CAP_SETPCAP), then
 * the bounding set, the ambient set, and finally every other set.
 */
int sbx_drop_privileges(const SbxPlan *p, SbxError *err)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = { 0 };
        struct rlimit core = { 0, 0 };
        struct rlimit nproc = { p->cgroup.pids_max, p->cgroup.pids_max };
        int last = last_cap();

        if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                             SECBIT_NO_SETUID_FIXUP_LOCKED |
                                             SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                                             SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) < 0)
                return sbx_fail(err, 71, -errno, "cannot lock the securebits: %m");
        for (int c = 0; c <= last; c++)
                if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                        return sbx_fail(err, 71, -errno,
                                        "cannot drop capability %d from the bounding set: %m", c);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                return sbx_fail(err, 71, -errno, "cannot clear the ambient capabilities: %m");
        if (syscall(SYS_capset, &h, d) < 0)
                return sbx_fail(err, 71, -errno, "cannot drop the capabilities: %m");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return sbx_fail(err, 71, -errno, "cannot set no_new_privs: %m");
        if (setrlimit(RLIMIT_CORE, &core) < 0)
                return sbx_fail(err, 71, -errno, "cannot set RLIMIT_CORE: %m");
        if (setrlimit(RLIMIT_NPROC, &nproc) < 0)
                return sbx_fail(err, 71, -errno, "cannot set RLIMIT_NPROC: %m");
        return 0;
}

/*
 * Without a memory cgroup, the per-process address-space limit: set last,
 * right before exec, since it also binds airlock's own (sanitizer) mappings.
 */
int sbx_limit_address_space(const SbxPlan *p, SbxError *err)
{
        struct rlimit as = { p->cgroup.memory_max, p->cgroup.memory_max };

        if (p->cgroup.v1_memory)
                return 0;
        if (setrlimit(RLIMIT_AS, &as) < 0)
                return sbx_fail(err, 71, -errno, "cannot set RLIMIT_AS: %m");
        return 0;
}

int sbx_restore_effective_caps(SbxError *err)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = { 0 };

        if (syscall(SYS_capget, &h, d) < 0)
                return sbx_fail(err, 71, -errno, "cannot read the capabilities: %m");
        d[0].effective = d[0].permitted;
        d[1].effective = d[1].permitted;
        if (syscall(SYS_capset, &h, d) < 0)
                return sbx_fail(err, 71, -errno, "cannot raise the namespace's capabilities: %m");
        return 0;
}
