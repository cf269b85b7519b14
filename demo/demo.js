/* The demo page: one Pxxo_Widget_Comet stream for the channels clock, board
 * and chat, and a Pxxo_Widget_Socket for what this tab says in the chat.
 * Every sentence comes from the module's string tables through
 * Pxxo_Widget_Comet.t(): the built-in keys, and the demo's own (DEMO_...)
 * that conf/demo.conf.in adds with CometTranslate. The page speaks the
 * tab's language (navigator.languages, or the one picked here last time),
 * times included (Intl.DateTimeFormat); what is shown already is told
 * again when the language changes. */
(function () {
    'use strict';

    var Comet = window.Pxxo_Widget_Comet, Socket = window.Pxxo_Widget_Socket;
    var t = Comet.t;
    var $ = function (id) { return document.getElementById(id); };
    var up = {};

    /* el gets the text of `key`, whose %s are the nodes (or strings) of
     * `parts`, in order: markup stays markup, the sentence and the order of
     * its parts are the translator's. */
    function fill(el, key, parts) {
        var marks = [], text, re = /\u0001(\d+)\u0002/g, last = 0, m, p, i;
        parts = parts || [];
        for (i = 0; i < parts.length; i++) {
            marks.push('\u0001' + i + '\u0002');
        }
        text = t.apply(null, [key].concat(marks));
        while (el.firstChild) {
            el.removeChild(el.firstChild);
        }
        while ((m = re.exec(text)) !== null) {
            el.appendChild(document.createTextNode(text.slice(last, m.index)));
            p = parts[+m[1]];
            el.appendChild(typeof p === 'string' ? document.createTextNode(p) : p);
            last = re.lastIndex;
        }
        el.appendChild(document.createTextNode(text.slice(last)));
        return el;
    }

    /* the page's own sentences: data-t (its element children fill the %s)
     * and data-t-placeholder; again when the language changes */
    var statics = [];
    (function () {
        var els = document.querySelectorAll('[data-t], [data-t-placeholder]'), i;
        for (i = 0; i < els.length; i++) {
            statics.push({ el: els[i], parts: Array.prototype.slice.call(els[i].children) });
        }
    })();

    function render() {
        var i, s;
        for (i = 0; i < statics.length; i++) {
            s = statics[i];
            if (s.el.getAttribute('data-t')) {
                fill(s.el, s.el.getAttribute('data-t'), s.parts);
            }
            if (s.el.getAttribute('data-t-placeholder')) {
                s.el.placeholder = t(s.el.getAttribute('data-t-placeholder'));
            }
        }
        document.documentElement.lang = Comet.lang;
        document.title = t('DEMO_TITLE') || 'mod_comet';
        $('lang').value = Comet.lang;
        if (nick !== null) {
            $('chat-nick').textContent = t('YOUR_NICK_IS', nick);
        }
        /* the board and the chat lines shown so far, times included */
        redo($('posts'));
        redo($('chat-lines'));
    }

    function redo(list) {
        var n;
        for (n = list.firstChild; n; n = n.nextSibling) {
            if (n.redo) {
                n.redo();
            }
        }
    }

    /* The first of the browser's languages (navigator.languages: what
     * Accept-Language says, unless something on the way changed it) that
     * the module has a table for (the picker's options), or null. */
    function browserLang() {
        var langs = navigator.languages && navigator.languages.length ? navigator.languages
                                                                       : [navigator.language || ''],
            opts = $('lang').options, i, j, base;
        for (i = 0; i < langs.length; i++) {
            base = String(langs[i]).toLowerCase().split('-')[0];
            for (j = 0; j < opts.length; j++) {
                if (opts[j].value === base) {
                    return base;
                }
            }
        }
        return null;
    }

    /* another language: the module serves its table as i18n/<lang>.js, which
     * hands it to Pxxo_Widget_Comet.useStrings() (the status is told again) */
    function useLanguage(lang) {
        var s = document.createElement('script');
        s.src = '/comet/i18n/' + encodeURIComponent(lang) + '.js';
        s.onload = render;
        document.head.appendChild(s);
    }
    $('lang').onchange = function () {
        try {
            localStorage.setItem('comet-demo-lang', this.value);
        }
        catch (x) {}
        useLanguage(this.value);
    };

    /* Dates and times in the page's language, as the browser writes it
     * when it asks for that language (en-GB: 24-hour, en-US: AM/PM). */
    function locale() {
        var langs = navigator.languages || [navigator.language], i;
        for (i = 0; langs && i < langs.length; i++) {
            if (String(langs[i]).toLowerCase().split('-')[0] === Comet.lang) {
                return String(langs[i]);
            }
        }
        return Comet.lang;
    }

    var timeFormat = null;

    function time(d) {
        var loc = locale();
        if (!timeFormat || timeFormat.loc !== loc) {
            timeFormat = new Intl.DateTimeFormat(loc, { timeStyle: 'medium' });
            timeFormat.loc = loc;
        }
        return timeFormat.format(d);
    }

    function when(id) {
        /* ids are the server's clock in microseconds */
        return time(new Date(Math.floor(id / 1000)));
    }

    /* li says `key` with `parts` (see fill()), after the time of message
     * `id` if given; li.redo() says it again in the language now in use */
    function localized(li, key, parts, id) {
        li.redo = function () {
            fill(li, key, parts);
            if (id) {
                li.insertBefore(span('when', when(id)), li.firstChild);
            }
        };
        li.redo();
        return li;
    }

    function span(cls, text) {
        var s = document.createElement('span');
        s.className = cls;
        s.textContent = text;
        return s;
    }

    /* One stream for the three channels: a browser opens at most 6
     * connections to a server over HTTP/1.1, and each tab holds its
     * socket's too. The board and the chat replay their buffer (since: 0);
     * so does the clock, whose last tick wins. The transport is the best
     * this browser and the location allow (Server-Sent Events, here). */
    var channels = {}, openedAt = 0;
    var streams = new Comet({ channel: 'clock,board,chat', since: 0 });
    streams.bindOnStatusEvent(function (text, state) {
        var el = $('status');
        up.streams = state === 'connected';
        el.textContent = text;
        el.className = 'status ' + (up.streams ? 'on' : 'off');
        el.title = streams.transport || '';
        $('transport').textContent = 'transport: ' + (streams.transport || '?');
    });
    streams.bindOnConnectEvent(function () {
        openedAt = new Date().getTime();
    });
    streams.bindOnDataEvent(function (data, id, channel) {
        if (channels[channel]) {
            channels[channel](data, id);
        }
    });

    /* clock: published every second by demo/clock, a channel source */
    channels.clock = function (data, id) {
        var d = new Date(data), el = $('clock-time'), date = $('clock-date');
        date.removeAttribute('data-t');
        if (isNaN(d.getTime())) {
            el.textContent = data;         /* someone published something else */
            date.textContent = '';
        }
        else {
            el.textContent = time(d);
            date.textContent = d.toLocaleDateString(locale(), { weekday: 'long', year: 'numeric',
                                                                month: 'long', day: 'numeric' });
        }
        $('clock-id').textContent = t('DEMO_CLOCK_ID', id);
        el.className = 'time';
        void el.offsetWidth;               /* restart the animation */
        el.className = 'time tick';
    };

    /* board: the buffered messages first (since 0), then the new ones */
    function addPost(data, id, fresh) {
        var post, li = document.createElement('li'), list = $('posts');
        try {
            post = JSON.parse(data);
        }
        catch (x) {
            post = null;
        }
        if (!post || typeof post.text !== 'string') {
            post = { name: 'curl', text: data };    /* a plain-text publish */
        }
        localized(li, 'SAYS', [span('who', String(post.name || '?')), String(post.text)], id);
        if (fresh) {
            li.className = 'new';
        }
        list.insertBefore(li, list.firstChild);
        $('board-empty').hidden = true;
    }

    channels.board = function (data, id) {
        /* the replay comes right after the open: highlight only what came later */
        addPost(data, id, new Date().getTime() - openedAt > 500);
    };

    /* the form publishes with a same-origin POST (Require local) */
    $('post').onsubmit = function (ev) {
        var xhr = new XMLHttpRequest(), button = this.querySelector('button'),
            err = $('post-error'), body;
        ev.preventDefault();
        body = JSON.stringify({ name: $('name').value, text: $('text').value });
        button.disabled = true;
        err.hidden = true;
        xhr.open('POST', '/comet-publish/board');
        xhr.setRequestHeader('Content-Type', 'application/json');
        xhr.onload = xhr.onerror = function () {
            button.disabled = false;
            if (xhr.status === 201) {
                $('text').value = '';
                $('text').focus();
            }
            else {
                err.textContent = t(xhr.status === 403 ? 'DEMO_NOT_PUBLISHED_LOCAL' : 'DEMO_NOT_PUBLISHED',
                                    xhr.status || 'network error');
                err.hidden = false;
            }
        };
        xhr.send(body);
    };

    /* chat: the room is the channel "chat", history first (its buffer);
     * what this tab says goes up its socket to its own chat-backend, which
     * publishes it there; the socket brings back what concerns this tab */
    var nick = null, myNicks = {}, lines = $('chat-lines');

    function chatLine(cls, key, args, id) {
        var atEnd = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4,
            li = localized(document.createElement('li'), key, args, id);
        li.className = cls;
        /* follow the conversation unless the reader scrolled up */
        lines.appendChild(li);
        while (lines.childNodes.length > 200) {
            lines.removeChild(lines.firstChild);
        }
        if (atEnd) {
            lines.scrollTop = lines.scrollHeight;
        }
    }

    channels.chat = function (data, id) {
        var ev;
        try {
            ev = JSON.parse(data);
        }
        catch (x) {
            ev = { type: 'say', nick: 'curl', text: data };     /* a plain-text publish */
        }
        if (!ev || typeof ev !== 'object') {
            return;
        }
        switch (ev.type) {
        case 'say':
            chatLine(myNicks[ev.nick] ? 'mine' : '', 'SAYS', [span('who', String(ev.nick)), String(ev.text)], id);
            break;
        case 'join':
            chatLine('event', 'JOINED', [String(ev.nick)], id);
            break;
        case 'leave':
            chatLine('event', 'LEFT', [String(ev.nick)], id);
            break;
        case 'nick':
            chatLine('event', 'DEMO_RENAMED', [String(ev.old), String(ev.nick)], id);
            break;
        }
    };

    function chatError(text) {
        var el = $('chat-error');
        el.textContent = text || '';
        el.hidden = !text;
    }

    function chatEnabled(on) {
        $('chat-text').disabled = !on;
        $('chat-form').querySelector('button').disabled = !on;
    }

    var sock = new Socket('/chat');
    $('chat-nick').textContent = t('CONNECTING');
    sock.bindOnConnectEvent(function () {
        up.chat = true;
        chatError('');
        chatEnabled(true);
        /* a new session gets a guest name: ask for the one we had */
        if (nick !== null) {
            sock.send('/nick ' + nick);
        }
    });
    sock.bindOnDataEvent(function (data) {
        var m, key;
        try {
            m = JSON.parse(data);
        }
        catch (x) {
            return;
        }
        if (m.type === 'nick') {
            nick = m.nick;
            myNicks[nick] = true;
            $('chat-nick').textContent = t('YOUR_NICK_IS', nick);
        }
        else if (m.type === 'error') {
            key = 'DEMO_ERROR_' + String(m.error).toUpperCase().replace(/[^A-Z0-9]/g, '_');
            chatError(t(key, m.max) || t('DEMO_ERROR', m.error));
        }
    });
    sock.bindOnDisconnectEvent(function (code, reason) {
        /* the session and its process are gone (server restart, network):
         * a new one in a while, under the same nick */
        var left = 3;
        up.chat = false;
        chatEnabled(false);
        (function countdown() {
            if (left === 0) {
                chatError(t('CONNECTING'));
                sock.connect();
                return;
            }
            chatError(t('SESSION_CLOSED') + ' (' + code + ' ' + reason + '). '
                      + t('RECONNECTING_IN', left--));
            setTimeout(countdown, 1000);
        })();
    });
    sock.connect();

    $('chat-form').onsubmit = function (ev) {
        var input = $('chat-text');
        ev.preventDefault();
        if (/\S/.test(input.value)) {
            sock.send(input.value);
            input.value = '';
        }
        input.focus();
    };

    var origin = document.querySelectorAll('.origin');
    for (var i = 0; i < origin.length; i++) {
        origin[i].textContent = location.protocol + '//' + location.host;
    }

    render();
    streams.connect();
    /* the language picked here last time, else the tab's: the table the
     * server sent follows Accept-Language, which may not be the tab's */
    var wanted = null;
    try {
        wanted = localStorage.getItem('comet-demo-lang');
    }
    catch (x) {}
    wanted = wanted || browserLang();
    if (wanted && wanted !== Comet.lang) {
        useLanguage(wanted);
    }
})();
