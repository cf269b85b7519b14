/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/* Unit tests of the string tables and Accept-Language negotiation. */

#include <stdlib.h>

#include "comet_i18n.h"
#include "unit.h"

static const char *neg(const char *al)
{
    return comet_lang_negotiate(al)->tag;
}

int main(void)
{
    const comet_lang_t *l;
    comet_buf_t b = { 0 };
    int i;

    IS_STR(neg(NULL), "en", "no header: English");
    IS_STR(neg(""), "en", "empty header: English");
    IS_STR(neg("fr"), "fr", "fr");
    IS_STR(neg("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5"), "fr", "regional tag matches");
    IS_STR(neg("en;q=0.5, de"), "de", "quality values decide");
    IS_STR(neg("ja, es;q=0.1"), "es", "unknown languages skipped");
    IS_STR(neg("ja"), "en", "nothing known: English");
    IS_STR(neg("*"), "en", "* is English");
    IS_STR(neg("de;q=0, fr;q=0.001"), "fr", "q=0 never chosen");
    IS_STR(neg("fr;q=2, es"), "es", "malformed q ignored");
    IS_STR(neg(",,;;=, ,es-419"), "es", "junk around a tag");
    IS_STR(neg("FR"), "fr", "case does not matter");
    OK(comet_lang_find("fr_CA", 5) && !comet_lang_find("french", 6) && !comet_lang_find("f1", 2),
       "find by primary subtag");
    /* every language has every English key */
    for (i = 0; comet_langs[i].tag; i++) {
        const comet_string_t *s;
        int missing = 0;
        for (s = comet_langs[0].strings; s->key; s++) {
            const comet_string_t *t;
            int found = 0;
            for (t = comet_langs[i].strings; t->key; t++) {
                found |= !strcmp(t->key, s->key);
            }
            missing += !found;
        }
        OK(missing == 0, "%s translates every string", comet_langs[i].tag);
    }
    l = comet_lang_find("fr", 2);
    IS_STR(comet_lang_text(l, "YOUR_NICK_IS"), "Votre pseudo est %s", "French text");
    OK(comet_lang_text(l, "NO_SUCH_KEY") == NULL, "unknown key: none");
    {
        const char *over[] = { "YOUR_NICK_IS", "My nick is %s", "EXTRA", "<b>x</b>" };
        comet_lang_json(&b, comet_lang_find("de", 2), over, 2);
        comet_buf_append(&b, "", 1);
        OK(strstr(b.data, "\"YOUR_NICK_IS\": \"My nick is %s\"") != NULL, "override applied");
        OK(strstr(b.data, "\"EXTRA\": \"\\u003cb\\u003ex\\u003c/b\\u003e\"") != NULL,
           "extra key, escaped");
        OK(strstr(b.data, "\"SEND\": \"Senden\"") != NULL, "the rest in German");
    }
    comet_buf_free(&b);
    return UNIT_DONE();
}
