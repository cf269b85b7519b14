/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Built-in string tables and Accept-Language negotiation; see comet_i18n.h.
 * Placeholders are %s, filled in order by the widgets' t() function. */

#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>

#include "comet_i18n.h"
#include "comet_json.h"

static const comet_string_t en[] = {
    { "CONNECTING", "Connecting\xe2\x80\xa6" },
    { "CONNECTED", "Connected" },
    { "DISCONNECTED", "Disconnected" },
    { "RECONNECTING_IN", "Reconnecting in %s seconds" },
    { "CHANNEL_CLOSED", "The channel was closed" },
    { "SESSION_CLOSED", "The session was closed" },
    { "YOUR_NICK_IS", "Your nick is %s" },
    { "NICK", "Nickname" },
    { "JOINED", "%s joined" },
    { "LEFT", "%s left" },
    { "SAYS", "%s: %s" },
    { "SEND", "Send" },
    { "PUBLISH", "Publish" },
    { "MESSAGE", "Message" },
    { "CLOCK", "Server clock" },
    { "BOARD", "Board" },
    { "CHAT", "Chat" },
    { NULL, NULL }
};

static const comet_string_t fr[] = {
    { "CONNECTING", "Connexion\xe2\x80\xa6" },
    { "CONNECTED", "Connect\xc3\xa9" },
    { "DISCONNECTED", "D\xc3\xa9" "connect\xc3\xa9" },
    { "RECONNECTING_IN", "Reconnexion dans %s secondes" },
    { "CHANNEL_CLOSED", "Le canal a \xc3\xa9t\xc3\xa9 ferm\xc3\xa9" },
    { "SESSION_CLOSED", "La session a \xc3\xa9t\xc3\xa9 ferm\xc3\xa9" "e" },
    { "YOUR_NICK_IS", "Votre pseudo est %s" },
    { "NICK", "Pseudo" },
    { "JOINED", "%s est arriv\xc3\xa9" },
    { "LEFT", "%s est parti" },
    { "SAYS", "%s\xc2\xa0: %s" },
    { "SEND", "Envoyer" },
    { "PUBLISH", "Publier" },
    { "MESSAGE", "Message" },
    { "CLOCK", "Horloge du serveur" },
    { "BOARD", "Tableau" },
    { "CHAT", "Discussion" },
    { NULL, NULL }
};

static const comet_string_t de[] = {
    { "CONNECTING", "Verbinde\xe2\x80\xa6" },
    { "CONNECTED", "Verbunden" },
    { "DISCONNECTED", "Getrennt" },
    { "RECONNECTING_IN", "Neuer Versuch in %s Sekunden" },
    { "CHANNEL_CLOSED", "Der Kanal wurde geschlossen" },
    { "SESSION_CLOSED", "Die Sitzung wurde beendet" },
    { "YOUR_NICK_IS", "Dein Spitzname ist %s" },
    { "NICK", "Spitzname" },
    { "JOINED", "%s ist da" },
    { "LEFT", "%s ist gegangen" },
    { "SAYS", "%s: %s" },
    { "SEND", "Senden" },
    { "PUBLISH", "Ver\xc3\xb6" "ffentlichen" },
    { "MESSAGE", "Nachricht" },
    { "CLOCK", "Serveruhr" },
    { "BOARD", "Pinnwand" },
    { "CHAT", "Chat" },
    { NULL, NULL }
};

static const comet_string_t es[] = {
    { "CONNECTING", "Conectando\xe2\x80\xa6" },
    { "CONNECTED", "Conectado" },
    { "DISCONNECTED", "Desconectado" },
    { "RECONNECTING_IN", "Reconectando en %s segundos" },
    { "CHANNEL_CLOSED", "El canal se ha cerrado" },
    { "SESSION_CLOSED", "La sesi\xc3\xb3n se ha cerrado" },
    { "YOUR_NICK_IS", "Tu apodo es %s" },
    { "NICK", "Apodo" },
    { "JOINED", "%s ha entrado" },
    { "LEFT", "%s se ha ido" },
    { "SAYS", "%s: %s" },
    { "SEND", "Enviar" },
    { "PUBLISH", "Publicar" },
    { "MESSAGE", "Mensaje" },
    { "CLOCK", "Reloj del servidor" },
    { "BOARD", "Tabl\xc3\xb3n" },
    { "CHAT", "Chat" },
    { NULL, NULL }
};

const comet_lang_t comet_langs[] = {
    { "en", en },
    { "fr", fr },
    { "de", de },
    { "es", es },
    { NULL, NULL }
};

const comet_lang_t *comet_lang_find(const char *tag, apr_size_t len)
{
    apr_size_t primary = 0;
    int i;

    /* the primary subtag decides: fr-CH, fr_ca, FR are French */
    while (primary < len && apr_isalpha(tag[primary])) {
        primary++;
    }
    if (primary == 0 || primary > 8 || (primary < len && tag[primary] != '-'
                                        && tag[primary] != '_')) {
        return NULL;
    }
    for (i = 0; comet_langs[i].tag; i++) {
        if (strlen(comet_langs[i].tag) == primary
            && !strncasecmp(comet_langs[i].tag, tag, primary)) {
            return &comet_langs[i];
        }
    }
    return NULL;
}

/* q=<value>: 0..1000, or -1 if malformed. */
static int parse_q(const char *s, apr_size_t len)
{
    int q = 0, scale = 1000, seen = 0;
    apr_size_t i = 0;

    if (len == 0 || (s[0] != '0' && s[0] != '1')) {
        return -1;
    }
    q = (s[0] - '0') * 1000;
    i = 1;
    if (i < len && s[i] == '.') {
        for (i++; i < len && seen < 3; i++, seen++) {
            if (!apr_isdigit(s[i])) {
                return -1;
            }
            scale /= 10;
            q += (s[i] - '0') * scale;
        }
    }
    if (i != len || q > 1000) {
        return -1;
    }
    return q;
}

const comet_lang_t *comet_lang_negotiate(const char *al)
{
    const comet_lang_t *best = &comet_langs[0];
    int best_q = 0;
    const char *p = al;

    if (!al) {
        return best;
    }
    while (*p) {
        const char *end = strchr(p, ','), *semi;
        apr_size_t len = end ? (apr_size_t)(end - p) : strlen(p), tl;
        int q = 1000;
        const comet_lang_t *l = NULL;

        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        semi = memchr(p, ';', len);
        tl = semi ? (apr_size_t)(semi - p) : len;
        while (tl && (p[tl - 1] == ' ' || p[tl - 1] == '\t')) {
            tl--;
        }
        if (semi) {
            const char *qs = semi + 1;
            apr_size_t ql = len - (apr_size_t)(qs - p);
            while (ql && (*qs == ' ' || *qs == '\t')) {
                qs++;
                ql--;
            }
            while (ql && (qs[ql - 1] == ' ' || qs[ql - 1] == '\t')) {
                ql--;
            }
            q = (ql > 2 && (qs[0] == 'q' || qs[0] == 'Q') && qs[1] == '=')
                ? parse_q(qs + 2, ql - 2) : -1;
        }
        if (tl == 1 && p[0] == '*') {
            l = &comet_langs[0];
        }
        else if (tl) {
            l = comet_lang_find(p, tl);
        }
        if (l && q > best_q) {
            best = l;
            best_q = q;
        }
        if (!end) {
            break;
        }
        p = end + 1;
    }
    return best;
}

const char *comet_lang_text(const comet_lang_t *lang, const char *key)
{
    const comet_string_t *s;

    for (s = lang ? lang->strings : NULL; s && s->key; s++) {
        if (!strcmp(s->key, key)) {
            return s->text;
        }
    }
    for (s = comet_langs[0].strings; s->key; s++) {
        if (!strcmp(s->key, key)) {
            return s->text;
        }
    }
    return NULL;
}

int comet_lang_json(comet_buf_t *out, const comet_lang_t *lang, const char *const *over,
                    apr_size_t n)
{
    const comet_string_t *s;
    apr_size_t i;
    comet_json_t j;

    comet_json_start(&j, out, COMET_JSON_SPACED);
    comet_json_open(&j, NULL, '{');
    for (s = comet_langs[0].strings; s->key; s++) {
        const char *text = comet_lang_text(lang, s->key);
        for (i = 0; i < n; i++) {
            if (!strcmp(over[2 * i], s->key)) {
                text = over[2 * i + 1];
            }
        }
        comet_json_str(&j, s->key, text, strlen(text));
    }
    /* keys only the configuration knows */
    for (i = 0; i < n; i++) {
        apr_size_t k;
        int later = 0;
        if (comet_lang_text(NULL, over[2 * i])) {
            continue;
        }
        for (k = i + 1; k < n; k++) {
            later |= !strcmp(over[2 * k], over[2 * i]);
        }
        if (!later) {
            comet_json_str(&j, over[2 * i], over[2 * i + 1], strlen(over[2 * i + 1]));
        }
    }
    comet_json_close(&j);
    return comet_json_finish(&j);
}
