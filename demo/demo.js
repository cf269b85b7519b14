/* The demo page: two Pxxo_Widget_Comet instances, one per channel. */
(function () {
    'use strict';

    var Comet = window.Pxxo_Widget_Comet;
    var $ = function (id) { return document.getElementById(id); };
    var up = {};

    /* one status for both streams: live only when both are */
    function status(name, isUp) {
        var el = $('status');
        up[name] = isUp;
        el.className = 'status ' + (up.clock && up.board ? 'on' : 'off');
        el.textContent = up.clock && up.board ? 'live' : 'reconnecting…';
    }

    function pad(n) {
        return (n < 10 ? '0' : '') + n;
    }

    /* clock: only what is published from now on */
    var clock = new Comet({ channel: 'clock' });
    clock.bindOnConnectEvent(function () { status('clock', true); });
    clock.bindOnDisconnectEvent(function () { status('clock', false); });
    clock.bindOnDataEvent(function (data, id) {
        var d = new Date(data), t = $('clock-time');
        if (isNaN(d.getTime())) {
            t.textContent = data;          /* someone published something else */
            $('clock-date').textContent = '';
        }
        else {
            t.textContent = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
            $('clock-date').textContent = d.toDateString();
        }
        $('clock-id').textContent = ', message id ' + id;
        t.className = 'time';
        void t.offsetWidth;                /* restart the animation */
        t.className = 'time tick';
    });
    clock.connect();

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

    var board = new Comet({ channel: 'board', since: 0 });
    var openedAt = 0;
    board.bindOnConnectEvent(function () { status('board', true); openedAt = new Date().getTime(); });
    board.bindOnDisconnectEvent(function () { status('board', false); });
    board.bindOnDataEvent(function (data, id) {
        /* the replay comes right after the open: highlight only what came later */
        addPost(data, id, new Date().getTime() - openedAt > 500);
    });
    board.connect();

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

    var origin = document.querySelectorAll('.origin');
    for (var i = 0; i < origin.length; i++) {
        origin[i].textContent = location.protocol + '//' + location.host;
    }
})();
