/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_request.h
 * @brief What every handler of the module does with a request: find the
 *        channel in the URL, read a query argument or the body, answer an
 *        error (status, log line, error-notes), answer JSON or text.
 */
#ifndef COMET_REQUEST_H
#define COMET_REQUEST_H

#include "mod_comet.h"
#include "comet_config.h"
#include "comet_json.h"

/** A method's bit, for comet_request_refuse_method. */
#define COMET_METHOD(m) (AP_METHOD_BIT << (m))

/**
 * Answer an error: the status, a line in the error log at `level` with the
 * URL and `why`, and `why` in error-notes (httpd shows it on its error page).
 * @return status
 */
int comet_request_error(request_rec *r, int status, int level, apr_status_t rv,
                        const char *why);

/**
 * 405 with an Allow header.
 * @param allowed  COMET_METHOD(M_GET) | ...
 * @return HTTP_METHOD_NOT_ALLOWED
 */
int comet_request_refuse_method(request_rec *r, apr_int64_t allowed);

/**
 * Read the whole request body, at most `max` bytes, NUL-terminated.
 * @return OK, HTTP_REQUEST_ENTITY_TOO_LARGE or another HTTP status
 */
int comet_request_read_body(request_rec *r, apr_off_t max, char **data, apr_size_t *len);

/** The path of the section that applies (NULL: a regex or none). */
const char *comet_request_location(request_rec *r, const comet_dir_conf_t *conf);

/** What follows the section's path in the URL ("" for the section itself). */
const char *comet_request_path_rest(request_rec *r, const comet_dir_conf_t *conf);

/**
 * What names the channel: what follows the section's path; when the
 * section is the channel's own (<Location /comet-publish/news> to give one
 * channel other settings), the URL's last segment.
 */
const char *comet_request_channel_path(request_rec *r, const comet_dir_conf_t *conf);

/** Value of a query argument, decoded; NULL if absent. */
const char *comet_request_arg(request_rec *r, const char *name);

/** Cache-Control that keeps every cache and proxy from storing the answer. */
void comet_request_no_cache(request_rec *r);

/**
 * Answer `body` with this status and content type (nothing for HEAD).
 * @return OK
 */
int comet_request_text(request_rec *r, int status, const char *content_type,
                       const char *body, apr_size_t len);

/**
 * Answer the JSON text `j` wrote (and free its buffer), uncached, with a
 * final newline; 500 if writing it failed.
 * @return OK or HTTP_INTERNAL_SERVER_ERROR
 */
int comet_request_json(request_rec *r, int status, comet_json_t *j);

/** s[0..len) escaped for the inside of a JSON string, in the request pool. */
const char *comet_request_json_str(request_rec *r, const char *s, apr_size_t len);

#endif /* COMET_REQUEST_H */
