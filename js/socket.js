/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * socket.js: the browser side of mod_comet's sockets, the Pxxo_Widget_Socket
 * class: a bidirectional session with a comet-socket <Location>.
 *
 *   <script src="/comet/socket.js"></script>
 *   var s = new Pxxo_Widget_Socket('/chat');     // or ('/chat', { transports: 'xhr' })
 *   s.bindOnDataEvent(function (data) { ... });
 *   s.bindOnConnectEvent(function () { ... });
 *   s.bindOnDisconnectEvent(function (code, reason) { ... });
 *   s.connect();  s.send('hello');  ...  s.close();
 *
 * The module serves this file wrapped like comet.js, as
 *   (function (global) { var COMET = { version, classId, ... }; <this file> })(this);
 * and as an ES module, <location>/socket.mjs, exporting the class by its
 * name and as default (js/socket.d.ts: its types).
 * The class is named after CometClassID with its trailing "Comet" turned
 * into "Socket" (Pxxo_Widget_Comet -> Pxxo_Widget_Socket, My_Comet ->
 * My_Socket); a class id not ending in "Comet" gets "_Socket" appended.
 *
 * On the wire it is SockJS 0.3, as sockjs-client speaks it: each connect()
 * opens a session <url>/<server>/<session>/ on the first of these transports
 * that opens it:
 *   websocket      <session>/websocket, both ways: a frame per WebSocket
 *                  message down, a JSON array of strings per message up;
 *                  tried only where the location's /info says
 *                  "websocket": true and the browser has WebSocket
 * then over HTTP, the messages coming down over one receiver at a time:
 *   htmlfile       a forever iframe (the PHP widgets' transport) calling
 *                  <Class>.cb.<id>.start(), .message(frame), .stop()
 *   xhr_streaming  one POST whose response grows, a frame per line
 *   xhr            long polling: one POST per batch of frames
 * and going up with POSTs to xhr_send (a JSON array of strings), one at a
 * time, in order, what is sent meanwhile batched into the next. Frames: "o"
 * open, "h" heartbeat, a["msg",...] messages, c[code,"reason"] close.
 * Same origin only (the forever iframe calls its parent). ES5 syntax and
 * DOM level 2 only: no framework, no build step.
 */

var doc = global.document;
var ID = /Comet$/.test(COMET.classId) ? COMET.classId.replace(/Comet$/, 'Socket')
                                      : COMET.classId + '_Socket';
var TRANSPORTS = ['websocket', 'htmlfile', 'xhr_streaming', 'xhr'];
var OPEN_TIMEOUT = 5000;    /* ms a transport has to open the session before the next is tried */
var HEARTBEAT = 25000;      /* CometSocketHeartbeat's default */
var RECEIVER_RETRIES = 3;   /* receivers in a row that bring nothing before the session is given up */
var BUSY_RETRIES = 6;       /* retries of a transport answered "busy" (503) in a row before the server is given up */
var MAX_BACKOFF = 30000;    /* ms between two attempts, at most */
var BATCH_MAX = 65536;      /* characters of messages per xhr_send, beyond the first message */

/* Loaded again: keep the class, whose callbacks live iframes hold. */
if (global[ID] && global[ID].version === COMET.version) {
    return;
}

function on(el, ev, fn) {
    if (el.addEventListener) {
        el.addEventListener(ev, fn, false);
    }
    else {
        el.attachEvent('on' + ev, fn);    /* old IE */
    }
}

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

function now() {
    return new Date().getTime();
}

/* n characters of [a-z0-9], from the browser's CSPRNG when there is one:
 * the session id is all that tells one session's POSTs from another's.
 * (256 is no multiple of 36: a-d come a little more often, harmless.) */
function randomId(n) {
    var abc = 'abcdefghijklmnopqrstuvwxyz0123456789', out = '', bytes = null, i;
    var crypto = global.crypto || global.msCrypto;

    if (crypto && crypto.getRandomValues && global.Uint8Array) {
        bytes = new Uint8Array(n);
        crypto.getRandomValues(bytes);
    }
    for (i = 0; i < n; i++) {
        out += abc.charAt((bytes ? bytes[i] : Math.floor(Math.random() * 256)) % 36);
    }
    return out;
}

/* "xhr" or ["htmlfile", "xhr"] -> the known ones, in that order. */
function transportList(t) {
    var list = t == null ? TRANSPORTS : typeof t === 'string' ? t.split(',') : t, out = [], i, j;

    for (i = 0; i < list.length; i++) {
        for (j = 0; j < TRANSPORTS.length; j++) {
            if (String(list[i]) === TRANSPORTS[j]) {
                out.push(TRANSPORTS[j]);
            }
        }
    }
    return out;
}

var count = 0;

/* The ws: or wss: URL of a path or URL of http: or https:. */
function wsUrl(u) {
    var a = doc.createElement('a');

    a.href = u;     /* read back absolute */
    return a.href.replace(/^http/i, 'ws');
}

/**
 * A socket to the comet-socket location `url` (e.g. "/chat"). Options:
 * transports (a name, "a,b" or an array, from websocket, htmlfile,
 * xhr_streaming and xhr; default all four in that order, websocket skipped
 * where /info does not offer it), timeout (ms a transport has to open the
 * session, default 5000), heartbeat (the location's CometSocketHeartbeat in
 * ms, default 25000: a receiver silent for 2.5 of them is replaced).
 */
function Socket(url, options) {
    if (!(this instanceof Socket)) {
        return new Socket(url, options);
    }
    if (url == null || url === '') {
        throw new Error(ID + ': the URL of a comet-socket location expected');
    }
    options = options || {};
    this.id = 's' + (++count);
    this.url = String(url).replace(/\/+$/, '');
    this.transports = transportList(options.transports);
    if (!this.transports.length) {
        throw new Error(ID + ': transports: ' + TRANSPORTS.join(', '));
    }
    this.timeout = +options.timeout > 0 ? +options.timeout : OPEN_TIMEOUT;
    this.heartbeat = +options.heartbeat > 0 ? +options.heartbeat : HEARTBEAT;
    this.connected = false;
    this.transport = null;  /* the one that opened the session */
    this.sessionId = null;
    this._handlers = { data: [], connect: [], disconnect: [] };
    this._state = 'closed'; /* closed, waiting (for the page's load), connecting, open */
    this._base = null;      /* <url>/<server>/<session> */
    this._next = 0;         /* index of the next transport to try */
    this._attempt = 0;      /* bumped per receiver: late calls of old ones are ignored */
    this._receiver = null;  /* { abort: fn } */
    this._frames = 0;       /* frames the current receiver brought */
    this._failures = 0;     /* receivers in a row that brought nothing */
    this._busy = 0;         /* answers "busy" in a row while connecting */
    this._websocket = false;    /* /info offers it and the browser has it */
    this._queue = [];       /* messages not sent yet */
    this._sending = null;   /* the xhr_send in flight */
    this._timer = null;     /* open timeout, or the delay before the next receiver */
    this._watchdog = null;
    this._seen = 0;
}

Socket.version = COMET.version;
Socket.cb = {};             /* the htmlfile iframes call <Class>.cb.<id> */

Socket.prototype.bindOnDataEvent = function (fn) {
    this._handlers.data.push(fn);
    return this;
};

Socket.prototype.bindOnConnectEvent = function (fn) {
    this._handlers.connect.push(fn);
    return this;
};

Socket.prototype.bindOnDisconnectEvent = function (fn) {
    this._handlers.disconnect.push(fn);
    return this;
};

/* Call the handlers; one that throws must not break the session nor the
 * other handlers, but its error should still reach the console. */
Socket.prototype._fire = function (name, args) {
    var list = this._handlers[name].slice(), i;

    for (i = 0; i < list.length; i++) {
        try {
            list[i].apply(this, args || []);
        }
        catch (err) {
            setTimeout(function () { throw err; }, 0);
        }
    }
};

/**
 * Open a new session. Every connect() ends in exactly one disconnect event,
 * with the server's close code and reason (3000 "Go away!"...), 1000 "Normal
 * closure" after close(), 1006 when the session was lost, 2000 "All
 * transports failed" when none could open it. Nothing reconnects by itself:
 * the program behind a session is gone with it, so a new session is the
 * caller's decision.
 */
Socket.prototype.connect = function () {
    var self = this;

    if (this._state !== 'closed') {
        return this;
    }
    this._state = 'waiting';
    this._next = 0;
    this._busy = 0;
    this._queue = [];
    /* An iframe added before the page's load event delays that event, and a
     * forever iframe would delay it forever: wait for it. */
    if (doc.readyState === 'complete') {
        this._start();
    }
    else {
        on(global, 'load', function () {
            if (self._state === 'waiting') {
                self._start();
            }
        });
    }
    return this;
};

/**
 * Send a message (a string; anything else is converted). Before the session
 * is open, messages wait for it; after close() they are dropped (false).
 */
Socket.prototype.send = function (data) {
    if (this._state === 'closed') {
        return false;
    }
    this._queue.push(String(data));
    this._flush();
    return true;
};

/** End the session: disconnect fires with 1000 "Normal closure". */
Socket.prototype.close = function (code, reason) {
    if (this._state !== 'closed') {
        this._end(code == null ? 1000 : +code, reason == null ? 'Normal closure' : String(reason));
    }
    return this;
};

/* Ask the location's /info whether it offers WebSocket, when websocket is
 * among the transports and the browser has it, as sockjs-client does; then
 * try the transports. Without an answer within `timeout` (or a useful one),
 * websocket is skipped: the HTTP transports tell for themselves. */
Socket.prototype._start = function () {
    var self = this, xhr, done = false, i;

    this._state = 'connecting';
    this._websocket = false;
    for (i = 0; i < this.transports.length && this.transports[i] !== 'websocket'; i++) {}
    if (i === this.transports.length || typeof global.WebSocket !== 'function'
        && typeof global.WebSocket !== 'object') {
        this._try();
        return;
    }
    function end(info) {
        if (done) {
            return;
        }
        done = true;
        xhr.onreadystatechange = function () {};
        clearTimeout(self._timer);
        self._receiver = null;
        try {
            self._websocket = JSON.parse(info).websocket === true;
        }
        catch (x) {}
        if (self._state === 'connecting') {
            self._try();
        }
    }
    xhr = new XMLHttpRequest();
    /* the module says no-store; the query keeps any cache out regardless */
    xhr.open('GET', this.url + '/info?t=' + now(), true);
    xhr.onreadystatechange = function () {
        if (xhr.readyState === 4) {
            end(xhr.status === 200 ? xhr.responseText : null);
        }
    };
    this._receiver = {
        abort: function () {
            done = true;
            xhr.onreadystatechange = function () {};
            try {
                xhr.abort();
            }
            catch (x) {}
        }
    };
    clearTimeout(this._timer);
    this._timer = setTimeout(function () {
        if (!done) {
            try {
                xhr.abort();
            }
            catch (x) {}
            end(null);
        }
    }, this.timeout);
    xhr.send(null);
};

/* Open a session on the next transport, or give up. A transport that failed
 * leaves its session behind (the server drops it after
 * CometSocketDisconnectDelay): the server may have opened it already, and
 * then would never say "o" again to the next transport. */
Socket.prototype._try = function () {
    var self = this;

    while (this._next < this.transports.length && this.transports[this._next] === 'websocket'
           && !this._websocket) {
        this._next++;
    }
    if (this._next >= this.transports.length) {
        this._end(2000, 'All transports failed');
        return;
    }
    this._state = 'connecting';
    this.transport = this.transports[this._next++];
    this.sessionId = randomId(16);
    /* the server id only spreads sessions over servers behind a balancer */
    this._base = this.url + '/' + String(1000 + Math.floor(Math.random() * 1000)).slice(1)
                 + '/' + this.sessionId;
    this._failures = 0;
    clearTimeout(this._timer);
    this._timer = setTimeout(function () {
        if (self._state === 'connecting') {
            self._stopReceiver();
            self._try();
        }
    }, this.timeout);
    this._receive();
};

/* Start a receiver on the session's transport. */
Socket.prototype._receive = function () {
    var self = this, attempt = ++this._attempt;

    this._frames = 0;
    this._receiver = (this.transport === 'websocket' ? websocket
                      : this.transport === 'htmlfile' ? htmlfile : xhrReceiver)(this, attempt);
    this._seen = now();
    (function arm(wait) {
        clearTimeout(self._watchdog);
        self._watchdog = setTimeout(function () {
            var left = self._seen + 2.5 * self.heartbeat - now();
            if (attempt !== self._attempt) {
                return;
            }
            if (left > 0) {
                arm(left);
            }
            else {
                self._receiverEnded(attempt, true);
            }
        }, wait);
    })(2.5 * this.heartbeat);
};

/* Forget the current receiver: its late calls are ignored. */
Socket.prototype._stopReceiver = function () {
    var r = this._receiver;

    this._attempt++;
    this._receiver = null;
    clearTimeout(this._watchdog);
    this._watchdog = null;
    if (r) {
        r.abort();
    }
};

/* The server said it is busy (503, CometMaxThreadStreams) before the
 * session opened: the same transport again, with a new session, after what
 * it asks for and no sooner than a growing backoff; after BUSY_RETRIES in a
 * row, give up. */
Socket.prototype._busyRetry = function (retry) {
    var self = this;
    var delay = Math.min(Math.max(1000 * (retry === undefined ? 5 : retry),
                                  500 * Math.pow(2, this._busy)), MAX_BACKOFF);

    if (++this._busy > BUSY_RETRIES) {
        this._end(2000, 'All transports failed');
        return;
    }
    clearTimeout(this._timer);
    this._timer = setTimeout(function () {
        if (self._state === 'connecting') {
            self._next--;       /* the same transport, a new session */
            self._try();
        }
    }, delay);
};

/* A receiver ended: the server ended a stream or answered a poll (open the
 * next at once), or it failed (before the session opened: try the next
 * transport; after: retry a few times, then give the session up; a
 * WebSocket is the session, whose end, or silence, ends it), or the
 * server was busy (status 503) before the session opened: the same again,
 * later. Once it is open, a receiver refused as busy is one that failed:
 * the server ends a session left without a receiver for
 * CometSocketDisconnectDelay (5 s by default), no longer than it asks to
 * wait (Retry-After: 5), so the session lives only if the next comes sooner. */
Socket.prototype._receiverEnded = function (attempt, failed, status, retry) {
    var self = this, delay;

    if (attempt !== this._attempt || this._state === 'closed') {
        return;
    }
    this._stopReceiver();
    if (status === 503 && this._state === 'connecting') {
        this._busyRetry(retry);
        return;
    }
    this._busy = 0;
    if (this._state === 'connecting') {
        clearTimeout(this._timer);
        this._try();
        return;
    }
    if (this.transport === 'websocket') {
        this._end(1006, 'Connection dropped');
        return;
    }
    if (!failed && this._frames) {
        this._failures = 0;
        this._receive();
        return;
    }
    if (++this._failures >= RECEIVER_RETRIES) {
        this._end(1006, 'Connection dropped');
        return;
    }
    delay = 500 * Math.pow(2, this._failures - 1);
    this._timer = setTimeout(function () {
        if (self._state === 'open' && !self._receiver) {
            self._receive();
        }
    }, delay);
};

/* One SockJS frame from the current receiver. */
Socket.prototype._frame = function (attempt, frame) {
    var type = frame.charAt(0), payload, i;

    if (attempt !== this._attempt || this._state === 'closed') {
        return;
    }
    this._seen = now();
    this._frames++;
    switch (type) {
    case 'o':
        if (this._state !== 'connecting') {
            /* a new session under our id: the server forgot ours */
            this._end(1006, 'Server lost session');
            return;
        }
        clearTimeout(this._timer);
        this._state = 'open';
        this.connected = true;
        this._fire('connect');
        this._flush();
        break;
    case 'a':
        try {
            payload = JSON.parse(frame.slice(1));
        }
        catch (x) {
            return;     /* not a frame of ours: the spec says ignore it */
        }
        for (i = 0; i < payload.length && attempt === this._attempt; i++) {
            this._fire('data', [payload[i]]);
        }
        break;
    case 'c':
        try {
            payload = JSON.parse(frame.slice(1));
        }
        catch (x) {
            payload = [];
        }
        this._end(+payload[0] || 1006, String(payload[1] == null ? '' : payload[1]));
        break;
    }
    /* "h" (and the xhr_streaming prelude, a line of h): only proof of life */
};

/* The session is over: stop everything, then tell, once. */
Socket.prototype._end = function (code, reason) {
    var sending = this._sending;

    this._state = 'closed';
    this.connected = false;
    this._stopReceiver();
    clearTimeout(this._timer);
    this._timer = null;
    this._queue = [];
    this._sending = null;
    if (sending) {
        sending.onreadystatechange = function () {};
    }
    this._fire('disconnect', [code, reason]);
};

/* The next messages to send: the first, and those after it up to
 * BATCH_MAX characters. */
Socket.prototype._batch = function () {
    var size = this._queue[0].length, n;

    for (n = 1; n < this._queue.length && size + this._queue[n].length <= BATCH_MAX; n++) {
        size += this._queue[n].length;
    }
    return this._queue.splice(0, n);
};

/* Send what waits: over the WebSocket at once, in messages of one batch
 * each; over HTTP in one POST, unless one is in flight: its completion sends
 * the next batch, so messages keep their order. */
Socket.prototype._flush = function () {
    var self = this, batch, xhr, base = this._base;

    if (this._state !== 'open' || this._sending || !this._queue.length) {
        return;
    }
    if (this.transport === 'websocket') {
        while (this._queue.length && this._state === 'open') {
            this._receiver.send(JSON.stringify(this._batch()));
        }
        return;
    }
    batch = this._batch();
    xhr = this._sending = new XMLHttpRequest();
    xhr.open('POST', base + '/xhr_send', true);
    /* text/plain: a "simple" request, no preflight even cross-origin */
    xhr.setRequestHeader('Content-Type', 'text/plain;charset=UTF-8');
    xhr.onreadystatechange = function () {
        if (xhr.readyState !== 4 || self._sending !== xhr) {
            return;
        }
        self._sending = null;
        if (xhr.status === 204 || xhr.status === 200) {
            self._flush();
        }
        else {
            /* the session is gone (404) or refused them (413, 503): the
             * order the caller relies on cannot be kept any more */
            self._end(1006, 'Sending error' + (xhr.status ? ' (HTTP ' + xhr.status + ')' : ''));
        }
    };
    xhr.send(JSON.stringify(batch));
};

/*******************************************************************************
 * receivers: each returns { abort: fn } and calls sock._frame(attempt, frame)
 * per frame, sock._receiverEnded(attempt, failed) once at its end
 ******************************************************************************/

/* <base>/websocket: a frame per message; it sends too ({ send: fn(text) }).
 * One that fails to open (refused, a proxy that does not pass it) or closes
 * ends: the close frame c[...] came first if the server ended the session. */
function websocket(sock, attempt) {
    var ws = null, done = false;

    function end() {
        if (!done) {
            done = true;
            sock._receiverEnded(attempt, true);
        }
    }
    try {
        ws = new global.WebSocket(wsUrl(sock._base + '/websocket'));
    }
    catch (x) {
        /* a URL or a port the browser refuses: later, as a failure would come */
        setTimeout(end, 0);
    }
    if (ws) {
        ws.onmessage = function (e) {
            if (!done) {
                sock._frame(attempt, String(e.data));
            }
        };
        /* an error is followed by close */
        ws.onclose = end;
    }
    return {
        abort: function () {
            done = true;
            if (ws) {
                ws.onmessage = ws.onclose = null;
                try {
                    ws.close(1000);
                }
                catch (x) {}
            }
        },
        send: function (text) {
            if (ws && !done) {
                ws.send(text);
            }
        }
    };
}

/* Every receiver says resume=1: the server then keeps the session when
 * one is dropped (the watchdog's replacements), where it would end it for
 * sockjs-client, as the SockJS protocol wants.
 *
 * The forever iframe: <base>/htmlfile?resume=1&c=<Class>.cb.<id>_<attempt> calls
 * start() first, message(frame) per frame, stop() at its end (its window's
 * load event). A callback per receiver: the page binds parent.<callback>
 * when its first script runs, which may be after it was replaced. */
function htmlfile(sock, attempt) {
    var f = doc.createElement('iframe'), started = false, done = false;
    var name = sock.id + '_' + attempt;

    function end() {
        if (!done) {
            done = true;
            sock._receiverEnded(attempt, !started);
        }
    }
    Socket.cb[name] = {
        start: function () {
            started = true;
        },
        message: function (frame) {
            sock._frame(attempt, String(frame));
        },
        stop: end
    };
    f.style.cssText = 'position:absolute;left:-9999px;top:0;width:1px;height:1px;'
                      + 'border:0;visibility:hidden';
    f.setAttribute('aria-hidden', 'true');
    f.setAttribute('tabindex', '-1');
    f.src = sock._base + '/htmlfile?resume=1&c=' + encodeURIComponent(ID + '.cb.' + name);
    (doc.body || doc.documentElement).appendChild(f);
    /* after insertion: the load event of about:blank is no end of stream;
     * an error page never calls stop() itself */
    on(f, 'load', end);
    return {
        abort: function () {
            done = true;
            delete Socket.cb[name];
            /* later: this may run inside a script of that very iframe */
            setTimeout(function () {
                if (f.parentNode) {
                    f.parentNode.removeChild(f);
                }
            }, 0);
        }
    };
}

/* xhr_streaming (frames as the response grows) or xhr (a poll: the frames
 * of one answer). A line is a frame; the streaming prelude is a line of h. */
function xhrReceiver(sock, attempt) {
    var xhr = new XMLHttpRequest(), streaming = sock.transport === 'xhr_streaming';
    var pos = 0, done = false;

    function read() {
        var text, nl;

        try {
            text = xhr.responseText;
        }
        catch (x) {
            return;     /* old IE before readyState 4 */
        }
        while (!done && (nl = text.indexOf('\n', pos)) >= 0) {
            if (nl > pos) {
                sock._frame(attempt, text.slice(pos, nl));
            }
            pos = nl + 1;
        }
    }
    xhr.open('POST', sock._base + '/' + sock.transport + '?resume=1', true);
    xhr.onreadystatechange = function () {
        if (done) {
            return;
        }
        if (xhr.readyState === 3 && streaming && xhr.status === 200) {
            read();
        }
        else if (xhr.readyState === 4) {
            if (xhr.status === 200) {
                read();
            }
            if (!done) {
                done = true;
                sock._receiverEnded(attempt, xhr.status !== 200, xhr.status,
                                    retryAfter(xhr.getResponseHeader('Retry-After')));
            }
        }
    };
    if (streaming && 'onprogress' in xhr) {
        /* readyState 3 fires once in some browsers; progress each time */
        xhr.onprogress = function () {
            if (!done && xhr.status === 200) {
                read();
            }
        };
    }
    xhr.send(null);
    return {
        abort: function () {
            done = true;
            xhr.onreadystatechange = xhr.onprogress = null;
            try {
                xhr.abort();
            }
            catch (x) {}
        }
    };
}

global[ID] = Socket;
