/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * Types of comet.js, the Pxxo_Widget_Comet class, as the ES module
 * <location>/comet.mjs exports it (the module serves this file as
 * <location>/comet.d.ts, with the class named by CometClassID):
 *
 *   import { Pxxo_Widget_Comet } from '/comet/comet.mjs';
 */

/** A transport of Pxxo_Widget_Comet, best first. */
export type CometTransport = 'websocket' | 'sse' | 'stream' | 'iframe' | 'longpoll';

/** The state a status event tells. */
export type CometStatus = 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

/** Why a stream went down: the server's end (reconnect, deleted, timeout), a cut, a silence, disconnect(). */
export type CometDisconnectReason = 'reconnect' | 'deleted' | 'timeout' | 'closed' | 'error' | 'silent' | 'user'
    | (string & {});

/** A string table: key -> text, its %s filled in order by t(). */
export type CometStrings = Record<string, string>;

export interface CometOptions {
    /** The comet location, e.g. "/comet" (default: where comet.js or comet.mjs came from). */
    url?: string;
    /** A channel, "a,b" or a list (default: comet.js?channel= or comet.mjs?channel=). */
    channel?: string | readonly string[];
    /** The first connect replays the buffered messages after this id (default: only new ones). */
    since?: number | string;
    /** One transport, "a,b" or a list in the order to try them (default: what the location allows, best first). */
    transport?: CometTransport | string | readonly CometTransport[];
}

export declare class Pxxo_Widget_Comet {
    constructor(options?: CometOptions);

    /** Instance number, e.g. "c1". */
    readonly id: string;
    /** The comet location, without a trailing slash. */
    readonly url: string;
    readonly channels: string[];
    /** The transports it will try, in order. */
    readonly transports: CometTransport[];
    /** The transport in use, or last used; null before the first connect(). */
    readonly transport: CometTransport | null;
    readonly connected: boolean;
    /** null before connect(). */
    readonly status: CometStatus | null;
    /** The id of the last message delivered, any channel. */
    readonly lastId: number | null;
    /** channel -> the id of its last message delivered, or where it started. */
    readonly lastIds: Record<string, number>;

    /** fn(data, id, channel) for each message, once, in order. */
    bindOnDataEvent(fn: (this: Pxxo_Widget_Comet, data: string, id: number, channel: string) => void): this;
    bindOnConnectEvent(fn: (this: Pxxo_Widget_Comet) => void): this;
    bindOnDisconnectEvent(fn: (this: Pxxo_Widget_Comet, reason: CometDisconnectReason) => void): this;
    /** fn(text, state, detail): the status in the strings in use, at each change and when the strings change. */
    bindOnStatusEvent(fn: (this: Pxxo_Widget_Comet, text: string, state: CometStatus,
                           detail: number | string | null) => void): this;
    /** The status in the strings in use ("" before connect()). */
    statusText(): string;
    /** Open the stream and keep it open, reconnecting as needed, until disconnect(). */
    connect(): this;
    /** Close the stream and stop reconnecting. */
    disconnect(): this;
    /** Pxxo_Widget_Comet.t() */
    t(key: string, ...args: Array<string | number>): string;

    /** The mod_comet version that served the class. */
    static readonly version: string;
    /** What the location allows (CometTransports). */
    static allowed: CometTransport[];
    /** Defaults from the script's URL. */
    static defaults: { url: string; channel: string | null };
    /** Set once a stream was held back by something that buffers: long-polling for the page. */
    static buffered: boolean;
    /** Stream through XHR even where fetch() can. */
    static noFetch: boolean;
    /** The language of the strings in use, e.g. "fr". */
    static lang: string;
    /** The strings in use. */
    static strings: CometStrings;
    /** The module's English table, for keys the table in use lacks. */
    static readonly english: CometStrings;
    /** The text of `key`, its %s (or %1$s...) filled with args; English where the table lacks it, "" for an unknown key. */
    static t(key: string, ...args: Array<string | number>): string;
    /** Use another table (<location>/i18n/<lang>.js calls it); status events fire again. */
    static useStrings(lang: string, table: CometStrings): void;
}

export default Pxxo_Widget_Comet;
