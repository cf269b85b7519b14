/* Licensed under the Apache License, Version 2.0 (the "License"); see README. */

/*
 * comet.js: the browser side of mod_comet, the Pxxo_Widget_Comet class.
 *
 *   <script src="/comet/comet.js?channel=news"></script>
 *   var c = new Pxxo_Widget_Comet();              // or ({ channel: 'a,b', since: 42 })
 *   c.bindOnDataEvent(function (data, id, channel) { ... });
 *   c.bindOnConnectEvent(function () { ... });
 *   c.bindOnDisconnectEvent(function (reason) { ... });
 *   c.connect();  ...  c.disconnect();
 *
 * The module serves this file wrapped as
 *   (function (global) { var COMET = { version, classId, base, heartbeat }; <this file> })(this);
 * so the class is named by CometClassID and knows its <Location>.
 *
 * Each connection is a hidden iframe on <url>/<channels>?cb=<ClassID>.cb.c<N>
 * [&since=<id>]; the page streamed into it calls the parent's function
 * f("o", heartbeatMs), f("m", id, data, channel), f("h"), f("e", reason).
 * ES5 syntax and DOM level 2 only: no framework, no build step.
 */

var doc = global.document;
var ID = COMET.classId;
var MAX_BACKOFF = 30000;    /* ms between two attempts, at most */
var QUICK_END = 1000;       /* a stream shorter than this never earns an immediate reconnect */

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
 * browsers, loaders), the last comet.js script in the page is ours. */
function scriptDefaults() {
    var d = { url: COMET.base, channel: null };
    var s = doc && doc.currentScript, src = s && s.src, all, i, m;

    if (!src && doc) {
        all = doc.getElementsByTagName('script');
        for (i = all.length - 1; i >= 0 && !src; i--) {
            if (/\/comet\.js([?#]|$)/.test(all[i].src)) {
                src = all[i].src;
            }
        }
    }
    m = src && /^([^?#]*)\/comet\.js(?:\?([^#]*))?/.exec(src);
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
function channelList(ch) {
    var list = ch == null ? [] : typeof ch === 'string' ? ch.split(',') : ch, out = [], i;

    for (i = 0; i < list.length; i++) {
        if (String(list[i])) {
            out.push(String(list[i]));
        }
    }
    return out;
}

var instances = [];     /* for dispatch() */
var count = 0;

/**
 * A subscription to one or more channels. Options: url (the comet location,
 * default from this script's URL), channel (name, "a,b" or an array; default
 * from comet.js?channel=), since (first connect replays the buffered messages
 * after this id; default: only new messages).
 */
function Comet(options) {
    if (!(this instanceof Comet)) {
        return new Comet(options);
    }
    options = options || {};
    this.id = 'c' + (++count);
    this.url = String(options.url || Comet.defaults.url).replace(/\/+$/, '');
    this.channels = channelList(options.channel != null ? options.channel
                                                        : Comet.defaults.channel);
    this.connected = false;
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
    this._handlers = { data: [], connect: [], disconnect: [] };
    this._wanted = false;   /* between connect() and disconnect() */
    this._frame = null;
    this._attempt = 0;      /* bumped per iframe: late calls of old ones are ignored */
    this._failures = 0;     /* attempts since the last successful open */
    this._retry = null;
    this._watchdog = null;
    this._limit = 0;        /* ms of silence before the stream is given up */
    this._seen = 0;         /* when the stream last spoke */
    this._opened = 0;
    instances.push(this);
}

Comet.version = COMET.version;
Comet.defaults = scriptDefaults();
Comet.cb = {};              /* the iframes call <ClassID>.cb.c<N> */

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

/* Call the handlers; one that throws must not break the stream nor the other
 * handlers, but its error should still reach the console. */
Comet.prototype._fire = function (name, args) {
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

/** Open the stream and keep it open, reconnecting as needed, until disconnect(). */
Comet.prototype.connect = function () {
    var self = this;

    if (!this.channels.length) {
        throw new Error(ID + ': no channel (option channel, or comet.js?channel=)');
    }
    if (this._wanted) {
        return this;
    }
    this._wanted = true;
    this._failures = 0;
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
    this._close();
    this._down('user');
    return this;
};

/* The id to resume from: the lowest of the channels' last ids, so that no
 * channel misses anything; what the others get twice is dropped on arrival. */
Comet.prototype._since = function () {
    var since = null, i, id;

    for (i = 0; i < this.channels.length; i++) {
        id = this.channels[i] in this.lastIds ? this.lastIds[this.channels[i]] : this._floor;
        if (id == null) {
            return null;
        }
        since = since == null || id < since ? id : since;
    }
    return since;
};

Comet.prototype._open = function () {
    var self = this, attempt, since, url, f;

    if (!this._wanted || this._frame) {
        return;
    }
    attempt = ++this._attempt;
    since = this._since();
    url = this.url + '/' + this.channels.join(',') + '?cb=' + ID + '.cb.' + this.id
          + (since != null ? '&since=' + since : '');
    Comet.cb[this.id] = function (kind) {
        if (attempt === self._attempt) {
            self._event(kind, arguments);
        }
    };
    /* A new iframe per attempt: changing the src of an old one would add
     * entries to the browser's history. */
    f = doc.createElement('iframe');
    f.style.cssText = 'position:absolute;left:-9999px;top:0;width:1px;height:1px;'
                      + 'border:0;visibility:hidden';
    f.setAttribute('aria-hidden', 'true');
    f.setAttribute('tabindex', '-1');
    f.src = url;
    (doc.body || doc.documentElement).appendChild(f);
    /* after insertion: the load event of about:blank is no end of stream */
    on(f, 'load', function () {
        if (attempt === self._attempt) {
            self._end(self.connected ? 'closed' : 'error');
        }
    });
    this._frame = f;
    this._opened = 0;
    /* the first event must come within the silence allowed later */
    this._watch(2.5 * (COMET.heartbeat || 20000));
};

/* Forget the current iframe: its late calls and load event are ignored. */
Comet.prototype._close = function () {
    var f = this._frame;

    this._attempt++;
    clearTimeout(this._watchdog);
    this._watchdog = null;
    delete Comet.cb[this.id];
    this._frame = null;
    if (f) {
        /* later: this may run inside a script of that very iframe */
        setTimeout(function () {
            if (f.parentNode) {
                f.parentNode.removeChild(f);
            }
        }, 0);
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

/* The stream ended (reason: reconnect, deleted, timeout from the server;
 * closed, error, silent seen here): tell, then come back unless told not to. */
Comet.prototype._end = function (reason) {
    var self = this, lived = this._opened ? now() - this._opened : 0, delay;

    this._close();
    this._down(reason);
    if (!this._wanted) {
        return;
    }
    if ((reason === 'reconnect' || reason === 'timeout') && lived >= QUICK_END) {
        delay = 0;      /* the server asks for it; nothing is wrong */
    }
    else {
        delay = Math.min(1000 * Math.pow(2, this._failures), MAX_BACKOFF);
        this._failures++;
    }
    this._retry = setTimeout(function () { self._open(); }, delay);
};

/* One call of the streamed page (or of a hand-written iframe via dispatch). */
Comet.prototype._event = function (kind, a) {
    this._seen = now();
    switch (kind) {
    case 'o':
        this._opened = this._seen;
        this._failures = 0;
        this._watch(2.5 * (+a[1] || 0));
        this._cursors(a[2]);
        if (!this.connected) {
            this.connected = true;
            this._fire('connect');
        }
        break;
    case 'm':
        this._message(+a[1], a[2], a[3]);
        break;
    case 'e':
        this._end(String(a[1]));
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
        id = Object.prototype.hasOwnProperty.call(cursors, ch) ? +cursors[ch] : NaN;
        if (!(ch in this.lastIds) && id >= 0) {
            this.lastIds[ch] = id;
        }
    }
};

/* Deliver a message once: after a reconnect, `since` replays what one channel
 * may have seen already. */
Comet.prototype._message = function (id, data, channel) {
    if (channel in this.lastIds && id <= this.lastIds[channel]) {
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
