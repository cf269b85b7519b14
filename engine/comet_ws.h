/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_ws.h
 * @brief WebSocket (RFC 6455) on a stream's connection, server side.
 *
 *   client bytes --comet_ws_feed--> wslay (unmasking, fragments, control
 *        frames, UTF-8, size limit) --> each whole message to a callback
 *                                  \--> replies (pong, close) to `out`
 *   server frames: comet_ws_frame (the transports, comet_transport.h)
 *
 * The server's frames are not masked, so a message's frame is the same for
 * every subscriber: the transports build it once (comet_transport.h) and the
 * reactor queues the same bytes to each. Parsing what a client sends is left
 * to wslay (Debian's libwslay), driven without any I/O of its own: the
 * reactor reads the socket and feeds the bytes here; whatever wslay answers
 * is handed back to be queued behind the frames already waiting, whole, so
 * that a reply never lands inside another frame.
 *
 * APR types only: no request handling in here.
 */
#ifndef COMET_WS_H
#define COMET_WS_H

#include "comet_util.h"

/** Opcodes (RFC 6455, 5.2). */
#define COMET_WS_TEXT    0x1
#define COMET_WS_BINARY  0x2
#define COMET_WS_CLOSE   0x8
#define COMET_WS_PING    0x9
#define COMET_WS_PONG    0xa

/** Close codes (RFC 6455, 7.4.1) this module sends. */
#define COMET_WS_NORMAL        1000
#define COMET_WS_GOING_AWAY    1001
#define COMET_WS_UNSUPPORTED   1003
#define COMET_WS_BAD_DATA      1007
#define COMET_WS_POLICY        1008
#define COMET_WS_TOO_BIG       1009
#define COMET_WS_SERVER_ERROR  1011
#define COMET_WS_TRY_LATER     1013

typedef struct comet_ws_t comet_ws_t;

/**
 * A whole message from the client (text: valid UTF-8).
 * @return 0, or a close code: the connection ends with it
 */
typedef int comet_ws_message_fn(void *baton, int opcode, const char *data, apr_size_t len);

/**
 * A server endpoint.
 * @param max_message  longest message accepted (larger: closed with 1009)
 * @param on_message   called for each text or binary message (NULL: ignored)
 * @return APR_SUCCESS or APR_ENOMEM
 */
apr_status_t comet_ws_create(comet_ws_t **ws, apr_size_t max_message,
                             comet_ws_message_fn *on_message, void *baton);

/**
 * A server endpoint of the draft WebSocket of 2010 (hixie-76), which the
 * SockJS test suite still asks for: the 16 bytes that end its handshake
 * depend on 8 bytes the client sends after its request, so they go out from
 * here, followed by `greeting`; then frames are 0x00 <UTF-8> 0xFF, and
 * 0xFF 0x00 closes.
 * @param key1, key2  the numbers of Sec-WebSocket-Key1/2 (comet_ws_hixie_key)
 */
apr_status_t comet_ws_create_hixie(comet_ws_t **ws, apr_uint32_t key1, apr_uint32_t key2,
                                   const char *greeting, apr_size_t glen,
                                   apr_size_t max_message,
                                   comet_ws_message_fn *on_message, void *baton);

/**
 * The number of a hixie-76 key: its digits divided by its spaces.
 * @return 0, or -1 if the key is not valid (no space, not a multiple)
 */
int comet_ws_hixie_key(const char *key, apr_uint32_t *n);

/** Append one hixie-76 text frame (0x00 data 0xFF). @return 0 or -1 */
int comet_ws_hixie_frame(comet_buf_t *out, const char *data, apr_size_t len);

/** Free the endpoint. */
void comet_ws_destroy(comet_ws_t *ws);

/**
 * Bytes from the client.
 * @param out  receives frames to send back (pong, close), to be queued
 *             after what waits already
 * @return APR_SUCCESS (go on reading); APR_EOF once the connection is over
 *         (the client closed, or broke the protocol: the closing frame is
 *         in out), send `out` then close; APR_ENOMEM
 */
apr_status_t comet_ws_feed(comet_ws_t *ws, const char *data, apr_size_t len,
                           comet_buf_t *out);

/**
 * End the connection from our side: a close frame with `code` and `reason`
 * into out (unless one went already); what the client sends from then on
 * is read and dropped.
 */
apr_status_t comet_ws_close(comet_ws_t *ws, int code, const char *reason, comet_buf_t *out);

/** @return nonzero once the client's close frame came */
int comet_ws_peer_closed(const comet_ws_t *ws);

/** @return nonzero once a close frame went either way */
int comet_ws_closing(const comet_ws_t *ws);

/**
 * Append one unmasked frame (FIN set) to out.
 * @return 0, or -1 (out of memory)
 */
int comet_ws_frame(comet_buf_t *out, int opcode, const char *data, apr_size_t len);

/**
 * Append a close frame: `code` (0: none), then `reason` (cut at 123 bytes).
 * @return 0 or -1
 */
int comet_ws_close_frame(comet_buf_t *out, int code, const char *reason);

/**
 * The Sec-WebSocket-Accept value of a client's Sec-WebSocket-Key:
 * base64(SHA-1(key + the RFC's GUID)), 28 characters and a NUL.
 */
void comet_ws_accept_key(const char *key, char accept[29]);

/*
 * permessage-deflate (RFC 7692), always without context takeover either
 * way: each message is compressed on its own, so a message's compressed
 * frame is the same for every subscriber (built once, as the plain one), and
 * a connection keeps no compressor of its own; the client's messages are
 * inflated by one decompressor per thread, reset for each.
 */

/** Messages shorter than this go uncompressed (deflate would not pay). */
#define COMET_WS_DEFLATE_MIN 64

/**
 * Take a permessage-deflate offer of a Sec-WebSocket-Extensions header, the
 * first this server can: not one that asks for a server window under 2^15
 * (the compressed frames are shared), nor one with a parameter the RFC does
 * not define, given twice or with a bad value (RFC 7692, 7.1).
 * @return the answer's Sec-WebSocket-Extensions (a static string), or NULL
 */
const char *comet_ws_deflate_answer(const char *extensions);

/** The endpoint's client may send compressed messages (RSV1): they are
 * inflated before its callback sees them, up to its longest message. */
void comet_ws_set_deflate(comet_ws_t *ws);

/**
 * Append one message frame, compressed (RSV1) when that makes it shorter
 * and it is at least COMET_WS_DEFLATE_MIN bytes, else as comet_ws_frame.
 * @return 0, or -1 (out of memory)
 */
int comet_ws_frame_deflate(comet_buf_t *out, int opcode, const char *data, apr_size_t len);

/** Free the calling thread's compressor and decompressor, if any (a
 * thread that used them calls it before it ends). */
void comet_ws_deflate_release(void);

#endif /* COMET_WS_H */
