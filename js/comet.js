/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * comet.js: the browser side of mod_comet, the Pxxo_Widget_Comet class.
 *
 *   <script src="/comet/comet.js?channel=news"></script>
 *   var c = new Pxxo_Widget_Comet();              // or ({ channel: 'a,b', since: 42 })
 *   c.bindOnDataEvent(function (data, id, channel) { ... });
 *   c.bindOnConnectEvent(function () { ... });
 *   c.bindOnDisconnectEvent(function (reason) { ... });
 *   c.bindOnStatusEvent(function (text, state, detail) { ... });   // translated
 *   c.connect();  ...  c.disconnect();
 *   Pxxo_Widget_Comet.t('YOUR_NICK_IS', nick);     // the served string tables
 *
 * The module serves this file wrapped as
 *   (function (global) { var COMET = { version, classId, base, heartbeat,
 *       transports, lang, strings }; <this file> })(this);
 * so the class is named by CometClassID, knows its <Location>, the transports
 * that location allows and the strings of the request's language. As an ES
 * module, <location>/comet.mjs, the same with globalThis for `this`, the
 * module's URL in COMET.src, and `export { <ClassID>, <ClassID> as default }`
 * after it (js/comet.d.ts: its types).
 *
 * Transports, all on GET <url>/<channels>, best first:
 *   websocket a WebSocket (wss: from an https: page), ?transport=websocket:
 *             a text frame per line of the stream transport's JSON, the
 *             heartbeats are pings (the browser answers them; the page never
 *             sees them), the end line then a close frame. One that fails to
 *             open, or does not bring the open line in time (a proxy that
 *             does not pass it), gives way to the next transport at once;
 *   sse       EventSource, ?transport=sse: the browser parses the stream, no
 *             memory grows with it, and it is what proxies know best;
 *   stream    fetch() reading the body as it comes (XHR progress events
 *             where fetch cannot stream), ?transport=stream: newline-
 *             delimited JSON, for browsers without EventSource;
 *   iframe    the forever iframe of the PHP widgets: works everywhere, but costs a
 *             document per stream;
 *   longpoll  one request per batch of messages, ?transport=longpoll: the
 *             slowest, and the only one a buffering proxy cannot hold back.
 * A stream that stays silent past 2.5 heartbeats although its response came
 * (or twice in a row) is being held by something that buffers: the page
 * goes over to long-polling for good. A WebSocket has no such watchdog once
 * open: its heartbeats never reach the page, so only the browser's close
 * event or the server's end (CometMaxLifetime too) ends it. Whatever the
 * transport, each channel resumes after the last id it delivered
 * (since=<channel>:<id>,...).
 * ES5 syntax and DOM level 2 only: no framework, no build step.
 */

var doc = global.document;
var ID = COMET.classId;
var MAX_BACKOFF = 30000;    /* ms between two attempts, at most */
var QUICK_END = 1000;       /* a stream shorter than this, that brought nothing, earns no immediate reconnect */
var TRANSPORTS = ['websocket', 'sse', 'stream', 'iframe', 'longpoll'];
var WS_OPEN_WAIT = 10000;   /* ms a WebSocket that never worked has to bring its open line */
/* event names of a multi-channel SSE stream that a channel cannot take: the
 * server's own are comet.open, comet.heartbeat, comet.end (a dot, which no
 * channel id has); "error" is the browser's */
var SSE_RESERVED = { error: 1 };

/* The English strings, for a key that the table in use lacks: the same as
 * the module's built-in table (comet_i18n.c). */
var ENGLISH = {
    CONNECTING: 'Connecting\u2026',
    CONNECTED: 'Connected',
    DISCONNECTED: 'Disconnected',
    RECONNECTING_IN: 'Reconnecting in %s seconds',
    CHANNEL_CLOSED: 'The channel was closed',
    SESSION_CLOSED: 'The session was closed',
    YOUR_NICK_IS: 'Your nick is %s',
    NICK: 'Nickname',
    JOINED: '%s joined',
    LEFT: '%s left',
    SAYS: '%s: %s',
    SEND: 'Send',
    PUBLISH: 'Publish',
    MESSAGE: 'Message',
    CLOCK: 'Server clock',
    BOARD: 'Board',
    CHAT: 'Chat'
};

/* status -> its string */
var STATUS_KEYS = {
    connecting: 'CONNECTING',
    connected: 'CONNECTED',
    reconnecting: 'RECONNECTING_IN',
    disconnected: 'DISCONNECTED'
};

function on(el, ev, fn) {
    if (el.addEventListener) {
        el.addEventListener(ev, fn, false);
    }
    else {
        el.attachEvent('on' + ev, fn);    /* old IE */
    }
}

function now() {
    return new Date().getTime();
}

function has(o, k) {
    return Object.prototype.hasOwnProperty.call(o, k);
}

function parseJSON(text) {
    try {
        return JSON.parse(text);
    }
    catch (x) {
        return null;
    }
}

/* Decoded value of `name` in a query string, or null. */
function queryArg(query, name) {
    var parts = query.split('&'), i, kv;

    for (i = 0; i < parts.length; i++) {
        kv = parts[i].split('=');
        if (kv[0] === name) {
            try {
                return decodeURIComponent((kv[1] || '').replace(/\+/g, ' '));
            }
            catch (x) {
                return null;
            }
        }
    }
    return null;
}

/* Defaults from this script's own URL (.../comet.js?channel=news), read now:
 * document.currentScript only exists while the script runs. Without it (old
 * browsers, loaders), the last comet.js script in the page is ours. The ES
 * module (comet.mjs) has no script element: its wrapper passes its URL. */
function scriptDefaults() {
    var d = { url: COMET.base, channel: null };
    var s = doc && doc.currentScript, src = COMET.src || (s && s.src), all, i, m;

    if (!src && doc) {
        all = doc.getElementsByTagName('script');
        for (i = all.length - 1; i >= 0 && !src; i--) {
            if (/\/comet\.js([?#]|$)/.test(all[i].src)) {
                src = all[i].src;
            }
        }
    }
    m = src && /^([^?#]*)\/comet\.m?js(?:\?([^#]*))?/.exec(src);
    if (m) {
        d.url = m[1];
        d.channel = queryArg(m[2] || '', 'channel');
    }
    return d;
}

/* Loaded again (a second widget, another comet.js?channel=): keep the class,
 * whose callbacks live iframes hold, and take the new script's defaults. */
if (global[ID] && global[ID].version === COMET.version) {
    global[ID].defaults = scriptDefaults();
    return;
}

/* "a,b" or ["a", "b"] -> ["a", "b"] */
function list(v) {
    var l = v == null ? [] : typeof v === 'string' ? v.split(',') : v, out = [], i;

    for (i = 0; i < l.length; i++) {
        if (String(l[i])) {
            out.push(String(l[i]));
        }
    }
    return out;
}

function indexOf(l, v) {
    var i;

    for (i = 0; i < l.length; i++) {
        if (l[i] === v) {
            return i;
        }
    }
    return -1;
}

/*******************************************************************************
 * strings
 ******************************************************************************/

/* "%s" takes the next argument, "%2$s" the second, "%%" is "%"; a missing
 * argument is empty. */
function format(text, args) {
    var next = 0;

    return text.replace(/%(?:(\d+)\$)?([s%])/g, function (all, n, c) {
        var v;
        if (c === '%') {
            return '%';
        }
        v = n ? args[n - 1] : args[next++];
        return v == null ? '' : String(v);
    });
}

/* The text of a key: the table in use, else English, else nothing (a page
 * never shows a raw key). */
function text(key) {
    var t = Comet.strings;

    key = String(key);
    if (t && has(t, key) && typeof t[key] === 'string' && t[key] !== '') {
        return t[key];
    }
    return has(ENGLISH, key) ? ENGLISH[key] : '';
}

/*******************************************************************************
 * receivers: each opens one response and reports what it brings through
 * sink(kind, ...): 'r' the response started, 'o' (heartbeat ms, cursors)
 * open, 'm' (id, data, channel), 'h' heartbeat, 'e' (reason) the server's
 * end, 'x' (HTTP status: 0 network, undefined unknown; seconds of a
 * Retry-After) it ended without one.
 * Each returns { close: fn }.
 ******************************************************************************/

function canFetchStream() {
    return typeof global.fetch === 'function' && typeof global.ReadableStream === 'function'
           && typeof global.TextDecoder === 'function' && typeof global.AbortController === 'function';
}

function canXHRStream() {
    return typeof global.XMLHttpRequest !== 'undefined'
           && 'onprogress' in new global.XMLHttpRequest();
}

var supported = {
    websocket: function () {
        return typeof global.WebSocket === 'function' || typeof global.WebSocket === 'object';
    },
    sse: function () {
        return typeof global.EventSource !== 'undefined';
    },
    stream: function () {
        return canFetchStream() || canXHRStream();
    },
    iframe: function () {
        return !!(doc && doc.createElement);
    },
    longpoll: function () {
        return typeof global.XMLHttpRequest !== 'undefined';
    }
};

/* Seconds a Retry-After header asks for (a number of seconds or a date);
 * undefined without one. */
function retryAfter(value) {
    var n;

    if (!value) {
        return undefined;
    }
    n = /^\s*\d+\s*$/.test(value) ? +value : (Date.parse(value) - now()) / 1000;
    return n >= 0 ? n : undefined;
}

/* One line of newline-delimited JSON; blank: a heartbeat (or the padding). */
function ndjsonLine(line, sink) {
    var o;

    if (!/\S/.test(line)) {
        sink('h');
        return;
    }
    o = parseJSON(line);
    if (!o || typeof o !== 'object') {
        return;
    }
    if (o.open) {
        sink('o', +o.open.heartbeat, o.open.cursors);
    }
    else if (has(o, 'id')) {
        sink('m', +o.id, String(o.data), String(o.channel));
    }
    else if (has(o, 'end')) {
        sink('e', String(o.end));
    }
}

/* Feed the complete lines of buf, return what is left of it. */
function ndjsonLines(buf, sink) {
    var nl;

    while ((nl = buf.indexOf('\n')) >= 0) {
        ndjsonLine(buf.slice(0, nl), sink);
        buf = buf.slice(nl + 1);
    }
    return buf;
}

var receivers = {};

/* Server-Sent Events. One channel: plain messages, id = the message's;
 * several: events named after the channel, id "a:<id>,b:<id>". The browser
 * would reconnect by itself, but from the last id only: closed at the first
 * error, the class reconnects with every channel's cursor. */
receivers.sse = function (url, sink) {
    var es = new global.EventSource(url), ch = this.channels, i;

    function control(name, fn) {
        es.addEventListener(name, function (e) {
            if (typeof e.data === 'string') {      /* not the browser's own open */
                fn(e.data);
            }
        }, false);
    }
    es.onopen = function () {
        sink('r');
    };
    control('comet.open', function (d) {
        var o = parseJSON(d) || {};
        sink('o', +o.heartbeat, o.cursors);
    });
    control('comet.heartbeat', function () {
        sink('h');
    });
    control('comet.end', function (d) {
        sink('e', d);
    });
    es.onerror = function () {
        /* CLOSED: refused (status, type); CONNECTING: the network */
        var refused = es.readyState === 2;
        es.close();
        sink('x', refused ? undefined : 0);
    };
    if (ch.length === 1) {
        es.onmessage = function (e) {
            sink('m', +e.lastEventId, e.data, ch[0]);
        };
    }
    else {
        for (i = 0; i < ch.length; i++) {
            (function (name) {
                es.addEventListener(name, function (e) {
                    var ids = Object.create(null), parts = String(e.lastEventId).split(','), j, k;
                    for (j = 0; j < parts.length; j++) {
                        k = parts[j].lastIndexOf(':');
                        ids[parts[j].slice(0, k)] = +parts[j].slice(k + 1);
                    }
                    sink('m', ids[name], e.data, name);
                }, false);
            })(ch[i]);
        }
    }
    return { close: function () { es.close(); } };
};

/* The ws: URL of a path or http: URL (wss: from an https: page, or for an
 * https: URL): the browser refuses ws: from an https: page. */
function wsUrl(u) {
    var a = doc.createElement('a'), abs;

    a.href = u;
    abs = a.href;       /* read back absolute */
    if (/^http:/i.test(abs) && global.location && global.location.protocol === 'https:') {
        abs = 'https:' + abs.slice(5);
    }
    return abs.replace(/^http/i, 'ws');
}

/* A WebSocket: a text frame per line of the stream transport. A close
 * without the end line: 'x', with status 0 once open (the connection
 * died), undefined before (refused or not passed on the way: the browser
 * does not tell which). */
receivers.websocket = function (url, sink) {
    var ws, dead = false, opened = false;

    function gone() {
        dead = true;
        if (ws) {
            ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        }
    }
    try {
        ws = new global.WebSocket(wsUrl(url));
    }
    catch (x) {
        /* a URL the browser refuses: as a refusal, later (the caller is
         * not ready for a report yet) */
        setTimeout(function () {
            if (!dead) {
                dead = true;
                sink('x');
            }
        }, 0);
        return { close: function () { dead = true; } };
    }
    ws.onopen = function () {
        opened = true;
        sink('r');
    };
    ws.onmessage = function (e) {
        if (!dead && typeof e.data === 'string') {
            ndjsonLine(e.data, sink);
        }
    };
    ws.onclose = function (e) {
        if (dead) {
            return;
        }
        gone();
        /* the close frame says it (1001 "reconnect", 1000 "deleted") where
         * the end line did not come */
        if (opened && (e.code === 1000 || e.code === 1001) && /^(reconnect|deleted|timeout)$/.test(e.reason)) {
            sink('e', e.reason);
        }
        else {
            sink('x', opened ? 0 : undefined);
        }
    };
    return {
        close: function () {
            gone();
            try {
                ws.close(1000);
            }
            catch (x) {
                /* closed already */
            }
        }
    };
};

/* Newline-delimited JSON as it comes through XHR (progress events; the
 * response text grows until the response ends). */
function xhrLines(url, sink) {
    var xhr = new global.XMLHttpRequest(), dead = false, seen = 0, buf = '';

    function take() {
        var t;
        if (dead || xhr.readyState < 3 || xhr.status !== 200) {
            return;
        }
        t = xhr.responseText;
        if (t.length > seen) {
            buf = ndjsonLines(buf + t.slice(seen), sink);
            seen = t.length;
        }
    }
    xhr.onreadystatechange = function () {
        if (dead) {
            return;
        }
        if (xhr.readyState === 2 && xhr.status === 200) {
            sink('r');
        }
        take();
        if (!dead && xhr.readyState === 4) {
            dead = true;
            if (xhr.status === 200) {
                ndjsonLines(buf + '\n', sink);
            }
            /* no end line: cut short */
            sink('x', xhr.status, retryAfter(xhr.getResponseHeader('Retry-After')));
        }
    };
    xhr.onprogress = take;
    xhr.open('GET', url, true);
    xhr.send(null);
    return { close: function () { dead = true; xhr.abort(); } };
}

/* A stream: fetch() and a body reader, or XHR where fetch cannot stream
 * (the response text grows until the server renews the stream,
 * CometStreamLimit). */
receivers.stream = function (url, sink) {
    var dead = false, ctl, buf = '';

    if (!canFetchStream() || Comet.noFetch) {
        return xhrLines(url, sink);
    }
    ctl = new global.AbortController();
    global.fetch(url, { cache: 'no-store', credentials: 'same-origin', signal: ctl.signal })
        .then(function (res) {
            var reader, dec;
            if (dead) {
                return;
            }
            if (!res.ok || !res.body) {
                sink('x', res.status, retryAfter(res.headers.get('Retry-After')));
                return;
            }
            sink('r');
            reader = res.body.getReader();
            dec = new global.TextDecoder();
            function pump() {
                return reader.read().then(function (r) {
                    if (dead) {
                        return;
                    }
                    if (r.done) {
                        buf = ndjsonLines(buf + dec.decode() + '\n', sink);
                        sink('x', res.status);
                        return;
                    }
                    buf = ndjsonLines(buf + dec.decode(r.value, { stream: true }), sink);
                    return pump();
                });
            }
            return pump();
        })
        .then(null, function () {
            if (!dead) {
                sink('x', 0);
            }
        });
    return { close: function () { dead = true; ctl.abort(); } };
};

/* One request: the open line, a batch of messages (or none once the
 * heartbeat interval passed), the end line; read as it comes, so that the
 * open line tells at once that the server is there. */
receivers.longpoll = xhrLines;

/* The forever iframe: the page streamed into it calls <ClassID>.cb.c<N>:
 * f("o", heartbeatMs, cursors), f("m", id, data, channel), f("h"),
 * f("e", reason). A new iframe per attempt: changing the src of an old one
 * would add entries to the browser's history. */
receivers.iframe = function (url, sink) {
    var f = doc.createElement('iframe'), id = this.id, dead = false;

    Comet.cb[id] = sink;
    f.style.cssText = 'position:absolute;left:-9999px;top:0;width:1px;height:1px;'
                      + 'border:0;visibility:hidden';
    f.setAttribute('aria-hidden', 'true');
    f.setAttribute('tabindex', '-1');
    f.src = url;
    (doc.body || doc.documentElement).appendChild(f);
    /* after insertion: the load event of about:blank is no end of stream */
    on(f, 'load', function () {
        if (!dead) {
            sink('x');
        }
    });
    return {
        close: function () {
            dead = true;
            if (Comet.cb[id] === sink) {
                delete Comet.cb[id];
            }
            /* later: this may run inside a script of that very iframe */
            setTimeout(function () {
                if (f.parentNode) {
                    f.parentNode.removeChild(f);
                }
            }, 0);
        }
    };
};

/*******************************************************************************
 * the class
 ******************************************************************************/

var instances = [];     /* for dispatch() and useStrings() */
var count = 0;

/**
 * A subscription to one or more channels. Options: url (the comet location,
 * default from this script's URL), channel (name, "a,b" or an array; default
 * from comet.js?channel=), since (first connect replays the buffered messages
 * after this id; default: only new messages), transport (one of websocket,
 * sse, stream, iframe, longpoll, or a list in the order to try them;
 * default: the ones the location allows and this browser has, best first:
 * websocket, sse, stream, iframe, longpoll).
 */
function Comet(options) {
    if (!(this instanceof Comet)) {
        return new Comet(options);
    }
    options = options || {};
    this.id = 'c' + (++count);
    this.url = String(options.url || Comet.defaults.url).replace(/\/+$/, '');
    this.channels = list(options.channel != null ? options.channel : Comet.defaults.channel);
    this.transports = this._choose(options.transport);
    this.transport = null;  /* the one in use, or last used */
    this.connected = false;
    this.status = null;     /* connecting, connected, reconnecting, disconnected */
    this.lastId = null;     /* id of the last message delivered, any channel */
    /* channel -> where it stands: the id of its last message delivered or,
     * before any, where its first stream started (the open event says);
     * no prototype, for a channel may be called __proto__ */
    this.lastIds = Object.create(null);
    /* What a channel resumes from before the open event said where it
     * stands (a server that does not say): `since`, or once a message came,
     * just below the first id seen (ids are the server's clock in
     * microseconds, so nothing of any channel arrived before it). */
    this._floor = options.since != null && options.since !== '' ? +options.since : null;
    this._handlers = { data: [], connect: [], disconnect: [], status: [] };
    this._wanted = false;   /* between connect() and disconnect() */
    this._rx = null;        /* the receiver in use */
    this._ti = 0;           /* index in this.transports */
    this._worked = {};      /* transport -> it opened once */
    this._attempt = 0;      /* bumped per response: late reports of old ones are ignored */
    this._failures = 0;     /* attempts since the last successful open */
    this._silences = 0;     /* streams given up in a row for silence */
    this._retry = null;
    this._ticker = null;
    this._watchdog = null;
    this._limit = 0;        /* ms of silence before the stream is given up */
    this._seen = 0;         /* when the stream last spoke */
    this._opened = 0;       /* when it opened */
    this._responded = false;
    this._progress = false; /* it delivered a message */
    this._statusArg = null;
    instances.push(this);
}

Comet.version = COMET.version;
Comet.defaults = scriptDefaults();
Comet.cb = {};              /* the iframes call <ClassID>.cb.c<N> */
Comet.allowed = COMET.transports ? list(COMET.transports) : TRANSPORTS.slice();
Comet.buffered = false;     /* a stream was held back: long-polling for the page */
Comet.noFetch = false;      /* stream through XHR even where fetch can */
Comet.english = ENGLISH;
Comet.lang = COMET.lang || 'en';
Comet.strings = COMET.strings || {};

/** The text of `key` in the strings in use, its %s filled with the other
 * arguments; English where the table lacks the key, '' for an unknown key. */
Comet.t = function (key) {
    return format(text(key), Array.prototype.slice.call(arguments, 1));
};

/** Use another string table (i18n/<lang>.js calls this); the status is told again. */
Comet.useStrings = function (lang, table) {
    var i;

    Comet.lang = String(lang);
    Comet.strings = table && typeof table === 'object' ? table : {};
    for (i = 0; i < instances.length; i++) {
        if (instances[i].status) {
            instances[i]._fire('status', instances[i]._statusArgs());
        }
    }
};

/* tables that i18n/<lang>.js left before the class was there: the last one */
(function () {
    var pre = global[ID + '_strings'], keys = pre && typeof pre === 'object' ? Object.keys(pre) : [];

    if (keys.length) {
        Comet.useStrings(keys[keys.length - 1], pre[keys[keys.length - 1]]);
    }
})();

Comet.prototype.t = function () {
    return Comet.t.apply(Comet, arguments);
};

/* The transports to try, in order: those asked, or those the location
 * allows; that this browser has. */
Comet.prototype._choose = function (asked) {
    var want = asked != null ? list(asked) : TRANSPORTS, out = [], i, j, reserved = false;

    for (j = 0; j < this.channels.length; j++) {
        reserved = reserved || has(SSE_RESERVED, this.channels[j]);
    }
    for (i = 0; i < want.length; i++) {
        if (!has(supported, want[i]) || !supported[want[i]]() || indexOf(out, want[i]) >= 0
            || (asked == null && indexOf(Comet.allowed, want[i]) < 0)
            || (want[i] === 'sse' && this.channels.length > 1 && reserved)) {
            continue;
        }
        out.push(want[i]);
    }
    return out;
};

Comet.prototype.bindOnDataEvent = function (fn) {
    this._handlers.data.push(fn);
    return this;
};

Comet.prototype.bindOnConnectEvent = function (fn) {
    this._handlers.connect.push(fn);
    return this;
};

Comet.prototype.bindOnDisconnectEvent = function (fn) {
    this._handlers.disconnect.push(fn);
    return this;
};

/** fn(text, state, detail): the status in the strings in use, each time it
 * changes (and when the strings do). state: connecting, connected,
 * reconnecting (detail: seconds left, told each second), disconnected
 * (detail: the reason). */
Comet.prototype.bindOnStatusEvent = function (fn) {
    this._handlers.status.push(fn);
    return this;
};

/** The status in the strings in use ('' before connect()). */
Comet.prototype.statusText = function () {
    return this.status ? Comet.t(STATUS_KEYS[this.status], this._statusArg) : '';
};

Comet.prototype._statusArgs = function () {
    return [this.statusText(), this.status, this._statusArg];
};

Comet.prototype._status = function (state, arg) {
    arg = arg == null ? null : arg;
    if (state === this.status && arg === this._statusArg) {
        return;
    }
    this.status = state;
    this._statusArg = arg;
    this._fire('status', this._statusArgs());
};

/* Call the handlers; one that throws must not break the stream nor the other
 * handlers, but its error should still reach the console. */
Comet.prototype._fire = function (name, args) {
    var l = this._handlers[name].slice(), i;

    for (i = 0; i < l.length; i++) {
        try {
            l[i].apply(this, args || []);
        }
        catch (err) {
            setTimeout(function () { throw err; }, 0);
        }
    }
};

/** Open the stream and keep it open, reconnecting as needed, until disconnect(). */
Comet.prototype.connect = function () {
    var self = this;

    if (!this.channels.length) {
        throw new Error(ID + ': no channel (option channel, or comet.js?channel=)');
    }
    if (!this.transports.length) {
        throw new Error(ID + ': no transport this browser has is allowed (option transport, CometTransports)');
    }
    if (this._wanted) {
        return this;
    }
    this._wanted = true;
    this._failures = 0;
    this._status('connecting');
    /* An iframe added before the page's load event delays that event, and a
     * forever iframe would delay it forever: wait for it. */
    if (doc.readyState === 'complete') {
        this._open();
    }
    else {
        on(global, 'load', function () { self._open(); });
    }
    return this;
};

/** Close the stream and stop reconnecting. */
Comet.prototype.disconnect = function () {
    this._wanted = false;
    clearTimeout(this._retry);
    clearTimeout(this._ticker);
    this._close();
    this._down('user');
    this._status('disconnected', 'user');
    return this;
};

/* Where to resume: one id for a single channel, <channel>:<id>,... for
 * several; a channel that knows nothing yet starts where it stands. */
Comet.prototype._since = function () {
    var parts = [], i, ch, id;

    for (i = 0; i < this.channels.length; i++) {
        ch = this.channels[i];
        id = ch in this.lastIds ? this.lastIds[ch] : this._floor;
        if (id != null) {
            parts.push(this.channels.length === 1 ? String(id) : ch + ':' + id);
        }
    }
    return parts.length ? parts.join(',') : null;
};

Comet.prototype._url = function (name) {
    var since = this._since(), q;

    q = name === 'iframe' ? 'cb=' + ID + '.cb.' + this.id : 'transport=' + name;
    return this.url + '/' + this.channels.join(',') + '?' + q
           + (since != null ? '&since=' + since : '');
};

Comet.prototype._open = function () {
    var self = this, attempt, lp, wait;

    if (!this._wanted || this._rx) {
        return;
    }
    /* the page found out that streams are held back */
    lp = indexOf(this.transports, 'longpoll');
    if (Comet.buffered && lp >= 0) {
        this._ti = lp;
    }
    clearTimeout(this._ticker);
    if (!this.connected) {
        this._status('connecting');
    }
    attempt = ++this._attempt;
    this.transport = this.transports[this._ti];
    this._opened = 0;
    this._responded = false;
    this._progress = false;
    this._rx = receivers[this.transport].call(this, this._url(this.transport), function (kind) {
        if (attempt === self._attempt) {
            self._event(kind, arguments);
        }
    });
    /* the first event must come within the silence allowed later; a
     * WebSocket not known to work here, sooner: a proxy may hold it */
    if (attempt === this._attempt && this._rx) {
        wait = 2.5 * (this._heartbeat || COMET.heartbeat || 20000);
        this._watch(this.transport === 'websocket' && !this._worked.websocket ? Math.min(wait, WS_OPEN_WAIT) : wait);
    }
};

/* Forget the current response: its late reports are ignored. */
Comet.prototype._close = function () {
    var rx = this._rx;

    this._attempt++;
    clearTimeout(this._watchdog);
    this._watchdog = null;
    this._rx = null;
    if (rx) {
        rx.close();
    }
};

Comet.prototype._down = function (reason) {
    if (this.connected) {
        this.connected = false;
        this._fire('disconnect', [reason]);
    }
};

/* Give up on a stream after `ms` of silence. One timer per stream, re-armed
 * when it expires: events only note the time, nothing per message. */
Comet.prototype._watch = function (ms) {
    var self = this;

    this._limit = ms;
    this._seen = now();
    clearTimeout(this._watchdog);
    this._watchdog = null;
    if (!(ms > 0) || !this._wanted) {
        return;
    }
    (function arm(wait) {
        self._watchdog = setTimeout(function () {
            var left = self._seen + self._limit - now();
            if (left > 0) {
                arm(left);
            }
            else {
                self._end('silent');
            }
        }, wait);
    })(ms);
};

/* The response ended (reason: reconnect, deleted, timeout from the server;
 * closed, error, silent seen here; status: what HTTP said, if known, and the
 * seconds its Retry-After asked for): tell, then come back, on this
 * transport or the next, unless told not to. */
Comet.prototype._end = function (reason, status, retry) {
    var name = this.transport, lived = this._opened ? now() - this._opened : 0;
    var routine = reason === 'reconnect' || reason === 'timeout', delay = -1, lp;

    this._close();
    /* a poll that ends as polls do is no disconnection */
    if (!(name === 'longpoll' && routine && this._opened)) {
        this._down(reason);
    }
    if (!this._wanted) {
        return;
    }
    if (name === 'websocket' && !this._worked[name] && (reason === 'silent' || reason === 'error')) {
        /* refused, or not passed on the way (a proxy that drops it, or
         * holds it): the next transport at once; no sign of buffering */
        delay = this._next();
    }
    else if (reason === 'silent' && name !== 'longpoll' && name !== 'websocket') {
        /* Silent although the response came, or twice in a row: something
         * holds the stream back (a buffering proxy). Long-polling from now
         * on, for every instance of the page. */
        this._silences++;
        lp = indexOf(this.transports, 'longpoll');
        if (lp >= 0 && ((this._responded && !this._opened) || this._silences >= 2)) {
            Comet.buffered = true;
            this._ti = lp;
            delay = 0;
        }
    }
    else if (status === 503) {
        /* the server is busy (CometMaxThreadStreams, a limit): the same
         * transport, after what it asks for and no sooner than the backoff */
        delay = Math.min(Math.max(1000 * (retry === undefined ? 5 : retry),
                                  1000 * Math.pow(2, this._failures)), MAX_BACKOFF);
        this._failures++;
    }
    else if (reason === 'error' && !this._worked[name] && status !== 0) {
        /* refused before it ever worked here (not allowed, not supported
         * on the way): the next transport, or all again after a while */
        delay = this._next();
    }
    if (delay < 0) {
        if (routine && (lived >= QUICK_END || this._progress)) {
            delay = 0;      /* the server asks for it; nothing is wrong */
        }
        else {
            delay = Math.min(1000 * Math.pow(2, this._failures), MAX_BACKOFF);
            this._failures++;
        }
    }
    this._schedule(delay);
};

/* On to the next transport: at once (0), or, past the last, all again
 * from the first after the backoff (-1). */
Comet.prototype._next = function () {
    this._ti++;
    if (this._ti < this.transports.length) {
        return 0;
    }
    this._ti = 0;
    return -1;
};

/* Open again in `delay` ms; say so each second until then. */
Comet.prototype._schedule = function (delay) {
    var self = this, at = now() + delay;

    clearTimeout(this._retry);
    clearTimeout(this._ticker);
    this._retry = setTimeout(function () { self._open(); }, delay);
    if (delay < 1000) {
        return;
    }
    (function tick() {
        var left = at - now(), s = Math.ceil(left / 1000);
        if (left <= 0 || !self._wanted || self._rx) {
            return;
        }
        self._status('reconnecting', s);
        self._ticker = setTimeout(tick, left - (s - 1) * 1000);
    })();
};

/* One report of the receiver (or of a hand-written iframe via dispatch). */
Comet.prototype._event = function (kind, a) {
    if (kind === 'r') {
        this._responded = true;         /* not a sign of life of the stream */
        return;
    }
    this._seen = now();
    switch (kind) {
    case 'o':
        this._opened = this._seen;
        this._failures = 0;
        if (this.transport) {
            this._worked[this.transport] = true;
        }
        this._heartbeat = +a[1] || 0;
        /* a WebSocket's heartbeats are pings the page never sees: no
         * silence watchdog, its close event tells */
        this._watch(this.transport === 'websocket' ? 0 : 2.5 * this._heartbeat);
        this._cursors(a[2]);
        if (!this.connected) {
            this.connected = true;
            this._fire('connect');
        }
        this._status('connected');
        break;
    case 'm':
        this._progress = true;
        this._silences = 0;
        this._message(+a[1], a[2], a[3]);
        break;
    case 'h':
        this._silences = 0;
        break;
    case 'e':
        this._end(String(a[1]));
        break;
    case 'x':
        this._end(this._opened || this.connected ? 'closed' : 'error', a[1], a[2]);
        break;
    }
};

/* The open event says where each channel stood ({channel: id}, 0 for one
 * without messages): the stream delivers what comes after. A channel that
 * has not delivered anything yet resumes from there, so a reconnect before
 * its first message loses nothing. A channel that has keeps its own. */
Comet.prototype._cursors = function (cursors) {
    var i, ch, id;

    if (!cursors || typeof cursors !== 'object') {
        return;         /* a server that does not say */
    }
    for (i = 0; i < this.channels.length; i++) {
        ch = this.channels[i];
        id = has(cursors, ch) ? +cursors[ch] : NaN;
        if (!(ch in this.lastIds) && id >= 0) {
            this.lastIds[ch] = id;
        }
    }
};

/* Deliver a message once: a replay may bring what was seen already. */
Comet.prototype._message = function (id, data, channel) {
    if (!(id >= 0) || (channel in this.lastIds && id <= this.lastIds[channel])) {
        return;
    }
    if (this._floor == null) {
        this._floor = id - 1;
    }
    this.lastIds[channel] = id;
    this.lastId = id;
    this._fire('data', [data, id, channel]);
};

/**
 * The default callback of a stream opened without cb= (a hand-written
 * <iframe src="/comet/news">): events go to the instances that have no
 * stream of their own, messages only to those listening to that channel.
 */
Comet.dispatch = function (kind) {
    var i, c, j, ok;

    for (i = 0; i < instances.length; i++) {
        c = instances[i];
        if (c._wanted) {
            continue;
        }
        ok = kind !== 'm' || !c.channels.length;
        for (j = 0; !ok && j < c.channels.length; j++) {
            ok = c.channels[j] === arguments[3];
        }
        if (ok) {
            if (kind === 'e') {
                c._down(String(arguments[1]));
            }
            else {
                c._event(kind, arguments);
            }
        }
    }
};

global[ID] = Comet;
