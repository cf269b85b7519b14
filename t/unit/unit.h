/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* A tiny TAP producer for the engine's unit tests. */
#ifndef COMET_UNIT_H
#define COMET_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_n, unit_failed;

#define OK(cond, ...) do {                                              \
        int ok_ = (cond) ? 1 : 0;                                       \
        printf("%s %d - ", ok_ ? "ok" : "not ok", ++unit_n);            \
        printf(__VA_ARGS__);                                            \
        printf("\n");                                                   \
        if (!ok_) {                                                     \
            unit_failed++;                                              \
            printf("#   failed at %s line %d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                               \
    } while (0)

#define IS_STR(got, want, ...) do {                                     \
        const char *g_ = (got), *w_ = (want);                           \
        OK(g_ && !strcmp(g_, w_), __VA_ARGS__);                         \
        if (!(g_ && !strcmp(g_, w_))) {                                 \
            printf("#   got:  '%s'\n#   want: '%s'\n", g_ ? g_ : "(null)", w_); \
        }                                                               \
    } while (0)

#define UNIT_DONE() (printf("1..%d\n", unit_n), unit_failed ? 1 : 0)

#endif
