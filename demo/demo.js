/* The demo page: one Pxxo_Widget_Comet stream for the channels clock, board
 * and chat, and a Pxxo_Widget_Socket for what this tab says in the chat. */
(function () {
    'use strict';

    var Comet = window.Pxxo_Widget_Comet, Socket = window.Pxxo_Widget_Socket;
    var $ = function (id) { return document.getElementById(id); };
    var up = {};

    /* The page's sentences, by language; %s are filled in order by t(). A
     * translation is one more table: nothing is built by concatenation. */
    var TEXTS = {
        en: {
            'live': 'live',
            'reconnecting': 'reconnecting…',
            'chat.title': 'Chat room',
            'chat.nick': 'Your nick is %s.',
            'chat.hint': 'Type /nick NAME to change it.',
            'chat.placeholder': 'Say something to every open tab',
            'chat.send': 'Send',
            'chat.about': 'Your tab has a session of its own on the server; the room is the channel chat.',
            'chat.join': '%s joined.',
            'chat.leave': '%s left.',
            'chat.rename': '%s is now %s.',
            'chat.connecting': 'connecting…',
            'chat.lost': 'Disconnected (%s %s): coming back in a few seconds.',
            'chat.error.bad-nick': 'A nick has 1 to %s characters.',
            'chat.error.too-long': 'At most %s characters, please.',
            'chat.error.too-fast': 'Slow down a little.',
            'chat.error.not-published': 'The room did not get that: try again.',
            'chat.error': 'Error: %s'
        },
        fr: {
            'live': 'en direct',
            'reconnecting': 'reconnexion…',
            'chat.title': 'Salon',
            'chat.nick': 'Votre pseudo est %s.',
            'chat.hint': 'Tapez /nick NOM pour en changer.',
            'chat.placeholder': 'Un mot à tous les onglets ouverts',
            'chat.send': 'Envoyer',
            'chat.about': 'Votre onglet a sa propre session sur le serveur ; le salon est le canal chat.',
            'chat.join': '%s est arrivé·e.',
            'chat.leave': '%s est parti·e.',
            'chat.rename': '%s s’appelle maintenant %s.',
            'chat.connecting': 'connexion…',
            'chat.lost': 'Déconnecté (%s %s) : retour dans quelques secondes.',
            'chat.error.bad-nick': 'Un pseudo a de 1 à %s caractères.',
            'chat.error.too-long': '%s caractères au plus, s’il vous plaît.',
            'chat.error.too-fast': 'Un peu moins vite.',
            'chat.error.not-published': 'Le salon n’a rien reçu : réessayez.',
            'chat.error': 'Erreur : %s'
        }
    };
    var lang = String(navigator.language || 'en').slice(0, 2).toLowerCase();
    var texts = TEXTS[lang] || TEXTS.en;

    function t(key) {
        var args = Array.prototype.slice.call(arguments, 1), i = 0;
        var s = texts[key] || TEXTS.en[key] || key;
        return s.replace(/%s/g, function () { return String(args[i++]); });
    }

    /* the static sentences of the page, in the page's language */
    (function () {
        var els = document.querySelectorAll('[data-text], [data-placeholder]'), i;
        for (i = 0; i < els.length; i++) {
            if (els[i].getAttribute('data-text')) {
                els[i].textContent = t(els[i].getAttribute('data-text'));
            }
            if (els[i].getAttribute('data-placeholder')) {
                els[i].placeholder = t(els[i].getAttribute('data-placeholder'));
            }
        }
        if (texts !== TEXTS.en) {
            document.documentElement.lang = lang;
        }
    })();

    /* one status for every stream: live only when all are */
    function status(name, isUp) {
        var el = $('status'), all;
        up[name] = isUp;
        all = up.streams && up.chat;
        el.className = 'status ' + (all ? 'on' : 'off');
        el.textContent = all ? t('live') : t('reconnecting');
    }

    function pad(n) {
        return (n < 10 ? '0' : '') + n;
    }

    /* One stream for the three channels: a browser opens at most 6
     * connections to a server over HTTP/1.1, and each tab holds its
     * socket's too. The board and the chat replay their buffer (since: 0);
     * so does the clock, whose last tick wins. */
    var channels = {}, openedAt = 0;
    var streams = new Comet({ channel: 'clock,board,chat', since: 0 });
    streams.bindOnConnectEvent(function () { status('streams', true); openedAt = new Date().getTime(); });
    streams.bindOnDisconnectEvent(function () { status('streams', false); });
    streams.bindOnDataEvent(function (data, id, channel) {
        if (channels[channel]) {
            channels[channel](data, id);
        }
    });

    /* clock: published every second by demo/clock, a channel source */
    channels.clock = function (data, id) {
        var d = new Date(data), el = $('clock-time');
        if (isNaN(d.getTime())) {
            el.textContent = data;         /* someone published something else */
            $('clock-date').textContent = '';
        }
        else {
            el.textContent = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
            $('clock-date').textContent = d.toDateString();
        }
        $('clock-id').textContent = ', message id ' + id;
        el.className = 'time';
        void el.offsetWidth;               /* restart the animation */
        el.className = 'time tick';
    };

    /* board: the buffered messages first (since 0), then the new ones */
    function addPost(data, id, fresh) {
        var post, li = document.createElement('li'), who = document.createElement('span'),
            when = document.createElement('span'), list = $('posts');
        try {
            post = JSON.parse(data);
        }
        catch (x) {
            post = null;
        }
        if (!post || typeof post.text !== 'string') {
            post = { name: 'curl', text: data };    /* a plain-text publish */
        }
        who.className = 'who';
        who.textContent = String(post.name || 'anonymous');
        when.className = 'when';
        /* ids are the server's clock in microseconds */
        when.textContent = new Date(Math.floor(id / 1000)).toLocaleTimeString();
        li.appendChild(when);
        li.appendChild(who);
        li.appendChild(document.createTextNode(post.text));
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
                err.textContent = 'Not published (' + (xhr.status || 'network error') + ')'
                                  + (xhr.status === 403 ? ': publishing is allowed from this machine only.' : '.');
                err.hidden = false;
            }
        };
        xhr.send(body);
    };

    /* chat: the room is the channel "chat", history first (its buffer);
     * what this tab says goes up its socket to its own chat-backend, which
     * publishes it there; the socket brings back what concerns this tab */
    var nick = null, myNicks = {}, lines = $('chat-lines');

    function chatLine(cls, who, text, id) {
        var li = document.createElement('li'), w, when;
        li.className = cls;
        if (id) {
            when = document.createElement('span');
            when.className = 'when';
            when.textContent = new Date(Math.floor(id / 1000)).toLocaleTimeString();
            li.appendChild(when);
        }
        if (who !== null) {
            w = document.createElement('span');
            w.className = 'who';
            w.textContent = who;
            li.appendChild(w);
        }
        li.appendChild(document.createTextNode(text));
        /* follow the conversation unless the reader scrolled up */
        var atEnd = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
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
            chatLine(myNicks[ev.nick] ? 'mine' : '', String(ev.nick), String(ev.text), id);
            break;
        case 'join':
            chatLine('event', null, t('chat.join', ev.nick), id);
            break;
        case 'leave':
            chatLine('event', null, t('chat.leave', ev.nick), id);
            break;
        case 'nick':
            chatLine('event', null, t('chat.rename', ev.old, ev.nick), id);
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
    $('chat-nick').textContent = t('chat.connecting');
    sock.bindOnConnectEvent(function () {
        status('chat', true);
        chatError('');
        chatEnabled(true);
        /* a new session gets a guest name: ask for the one we had */
        if (nick !== null) {
            sock.send('/nick ' + nick);
        }
    });
    sock.bindOnDataEvent(function (data) {
        var m;
        try {
            m = JSON.parse(data);
        }
        catch (x) {
            return;
        }
        if (m.type === 'nick') {
            nick = m.nick;
            myNicks[nick] = true;
            $('chat-nick').textContent = t('chat.nick', nick);
        }
        else if (m.type === 'error') {
            chatError(texts['chat.error.' + m.error] || TEXTS.en['chat.error.' + m.error]
                      ? t('chat.error.' + m.error, m.max) : t('chat.error', m.error));
        }
    });
    sock.bindOnDisconnectEvent(function (code, reason) {
        /* the session and its process are gone (server restart, network):
         * a new one in a while, under the same nick */
        status('chat', false);
        chatEnabled(false);
        chatError(t('chat.lost', code, reason));
        setTimeout(function () { sock.connect(); }, 3000);
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

    streams.connect();

    var origin = document.querySelectorAll('.origin');
    for (var i = 0; i < origin.length; i++) {
        origin[i].textContent = location.protocol + '//' + location.host;
    }
})();
