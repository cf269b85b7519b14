/* What the browser tests read back: window.log, and the messages shown in
 * <ol id="out"> as text. */
var log = { data: [], connects: 0, disconnects: [], errors: [], status: [] };

window.onerror = function (msg) {
    log.errors.push(String(msg));
};

/* A query argument of this page, or null. */
function param(name) {
    var m = new RegExp('[?&]' + name + '=([^&#]*)').exec(location.search);
    return m ? decodeURIComponent(m[1]) : null;
}

function record(c) {
    c.bindOnDataEvent(function (data, id, channel) {
        var li = document.createElement('li');
        log.data.push({ data: data, id: id, channel: channel });
        li.textContent = data;
        document.getElementById('out').appendChild(li);
    });
    c.bindOnConnectEvent(function () {
        log.connects++;
    });
    c.bindOnDisconnectEvent(function (reason) {
        log.disconnects.push(reason);
    });
    /* the translated status, shown in <p id="status"> if the page has one */
    if (c.bindOnStatusEvent) {
        c.bindOnStatusEvent(function (text, state, detail) {
            var el = document.getElementById('status');
            log.status.push([text, state, detail]);
            if (el) {
                el.textContent = text;
            }
        });
    }
    return c;
}

/* The same for a Pxxo_Widget_Socket: data are strings, disconnects [code, reason]. */
function recordSocket(s) {
    s.bindOnDataEvent(function (data) {
        var li = document.createElement('li');
        log.data.push(data);
        li.textContent = data;
        document.getElementById('out').appendChild(li);
    });
    s.bindOnConnectEvent(function () {
        log.connects++;
    });
    s.bindOnDisconnectEvent(function (code, reason) {
        log.disconnects.push([code, reason]);
    });
    return s;
}
