/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/*
 * mod_comet_socket: bidirectional sessions over HTTP (the SockJS protocol),
 * each bound to a backend process. Built into mod_comet.so; its hooks are
 * registered by mod_comet.c.
 */

#include "mod_comet.h"

void comet_socket_register_hooks(apr_pool_t *p)
{
    (void)p;
}
