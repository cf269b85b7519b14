/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * Types of socket.js, the Pxxo_Widget_Socket class, as the ES module
 * <location>/socket.mjs exports it (the module serves this file as
 * <location>/socket.d.ts, with the class named after CometClassID):
 *
 *   import { Pxxo_Widget_Socket } from '/comet/socket.mjs';
 */

/** A transport of Pxxo_Widget_Socket, in the order they are tried. */
export type SocketTransport = 'websocket' | 'htmlfile' | 'xhr_streaming' | 'xhr';

export interface SocketOptions {
    /** One transport, "a,b" or a list (default: all four, websocket where /info offers it). */
    transports?: SocketTransport | string | readonly SocketTransport[];
    /** ms a transport has to open the session (default 5000). */
    timeout?: number;
    /** The location's CometSocketHeartbeat in ms (default 25000). */
    heartbeat?: number;
}

export declare class Pxxo_Widget_Socket {
    /** A socket to the comet-socket location `url`, e.g. "/chat". */
    constructor(url: string, options?: SocketOptions);

    readonly id: string;
    readonly url: string;
    readonly transports: SocketTransport[];
    readonly timeout: number;
    readonly heartbeat: number;
    readonly connected: boolean;
    /** The transport that opened the session, or null. */
    readonly transport: SocketTransport | null;
    readonly sessionId: string | null;

    /** fn(data) for each message of the session, in order. */
    bindOnDataEvent(fn: (this: Pxxo_Widget_Socket, data: string) => void): this;
    bindOnConnectEvent(fn: (this: Pxxo_Widget_Socket) => void): this;
    /** Once per connect(): the server's close (3000 "Go away!"...), 1000 after close(),
     *  1006 when the session was lost, 2000 when every transport failed. */
    bindOnDisconnectEvent(fn: (this: Pxxo_Widget_Socket, code: number, reason: string) => void): this;
    /** Open a new session. */
    connect(): this;
    /** Send a message (waits for the session); false after close(). */
    send(data: string): boolean;
    /** End the session (disconnect: 1000 "Normal closure" by default). */
    close(code?: number, reason?: string): this;

    /** The mod_comet version that served the class. */
    static readonly version: string;
}

export default Pxxo_Widget_Socket;
