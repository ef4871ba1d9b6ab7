/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Replays a fuzz target's corpus as a plain test: every file named on the
 * command line (or found in a directory named there) is fed to
 * LLVMFuzzerTestOneInput once. Built without libFuzzer, so the corpus runs
 * in every build, the sanitizer build included.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        int r;

        r = read_full_file(path, 16 * 1024 * 1024, &buf, &n);
        if (r < 0) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(-r));
                return 1;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)buf, n);
        return 0;
}

int main(int argc, char **argv)
{
        unsigned count = 0;
        int fails = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;
                struct dirent *de;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "replay: %s: %m\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        fails += replay_file(argv[i]);
                        count++;
                        continue;
                }
                d = opendir(argv[i]);
                if (!d)
                        return 1;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *p = NULL;

                        if (de->d_name[0] == '.')
                                continue;
                        if (asprintf(&p, "%s/%s", argv[i], de->d_name) < 0)
                                return 1;
                        fails += replay_file(p);
                        count++;
                }
                closedir(d);
        }
        printf("replayed %u inputs\n", count);
        return fails ? 1 : (count ? 0 : 1);
}
