/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Build-time generator: turns data/policy.yaml into a C source holding its
 * bytes, so the embedded default policy is exactly the file in the tree.
 * Usage: policy-embed-gen INPUT OUTPUT
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
        FILE *in, *out;
        size_t n = 0;
        int c;

        if (argc != 3) {
                fprintf(stderr, "usage: %s INPUT OUTPUT\n", argv[0]);
                return 2;
        }
        in = fopen(argv[1], "rb");
        if (!in) {
                perror(argv[1]);
                return 1;
        }
        out = fopen(argv[2], "w");
        if (!out) {
                perror(argv[2]);
                return 1;
        }
        fputs("/* Generated from data/policy.yaml by policy-embed-gen; do not edit. */\n"
              "#include <stddef.h>\n"
              "extern const char policy_default_yaml[];\n"
              "extern const size_t policy_default_yaml_len;\n"
              "const char policy_default_yaml[] = {",
              out);
        while ((c = getc(in)) != EOF) {
                if (c == 0) {
                        fprintf(stderr, "%s: contains a NUL byte\n", argv[1]);
                        return 1;
                }
                fprintf(out, "%s%d", n % 16 == 0 ? "\n\t" : " ", c);
                fputc(',', out);
                n++;
        }
        if (ferror(in)) {
                perror(argv[1]);
                return 1;
        }
        fprintf(out, "\n\t0\n};\nconst size_t policy_default_yaml_len = %zu;\n", n);
        if (fclose(out) != 0) {
                perror(argv[2]);
                return 1;
        }
        fclose(in);
        return 0;
}
