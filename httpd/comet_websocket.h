/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_websocket.h
 * @brief The WebSocket handshake (RFC 6455, 4.2) as a handler answers it:
 *        the request checked, 101 Switching Protocols written, and from then
 *        on the response's bytes go to the client as they are (frames), until
 *        the stream is handed to the child's event loop (comet_stream.h),
 *        which reads the client's frames there (engine/comet_ws.h).
 */
#ifndef COMET_WEBSOCKET_H
#define COMET_WEBSOCKET_H

#include "mod_comet.h"

/**
 * Does the request ask for a WebSocket?
 * @return 1 if it carries `Upgrade: websocket`, else 0
 */
int comet_websocket_asked(request_rec *r);

/**
 * Check a WebSocket handshake.
 * @param hixie  accept the draft of 2010 too (SockJS)
 * @param why  set to the reason of a refusal (the text SockJS clients expect)
 * @return OK; HTTP_METHOD_NOT_ALLOWED (not a GET); HTTP_BAD_REQUEST (no
 *         upgrade to websocket, Connection without "Upgrade", HTTP/1.0, a
 *         bad key); HTTP_UPGRADE_REQUIRED (a version other than 13:
 *         Sec-WebSocket-Version: 13 is set); HTTP_NOT_IMPLEMENTED (this
 *         connection cannot be taken by the event loop: HTTP/2, a filter
 *         rewriting the response, CometStreamMode thread)
 */
int comet_websocket_check(request_rec *r, int stream_mode, int hixie, const char **why);

/**
 * Is it a handshake of the WebSocket draft of 2010 (hixie-76:
 * Sec-WebSocket-Key1 and Key2, no version), with valid keys?
 * @param keys  receives the keys' numbers
 * @return 1 or 0
 */
int comet_websocket_hixie(request_rec *r, apr_uint32_t keys[2]);

/**
 * Does the client offer permessage-deflate in a form this server takes
 * (engine/comet_ws.h, comet_ws_deflate_answer)?
 * @param enabled  CometWebSocketCompression
 * @return the Sec-WebSocket-Extensions to answer, or NULL: none
 */
const char *comet_websocket_deflate(request_rec *r, int enabled);

/**
 * Answer 101 Switching Protocols with the accept key, and make the rest of
 * the response raw: no HTTP header, no chunking, no keep-alive, no request
 * timeout. hixie: the draft of 2010's head (its last 16 bytes are the
 * loop's to send, comet_ws_create_hixie).
 * @param extensions  Sec-WebSocket-Extensions of the answer, or NULL
 * @return OK, or -1 if the client is gone
 */
int comet_websocket_upgrade(request_rec *r, int hixie, const char *extensions);

#endif /* COMET_WEBSOCKET_H */
