/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/**
 * @file comet_i18n.h
 * @brief The widgets' user-visible strings in each built-in language, and the
 *        choice of a language from an Accept-Language header. APR only.
 */
#ifndef COMET_I18N_H
#define COMET_I18N_H

#include "comet_util.h"

/** One string of a table. */
typedef struct comet_string_t {
    const char *key;
    const char *text;
} comet_string_t;

/** A language's table, NULL-key terminated. */
typedef struct comet_lang_t {
    const char *tag;                  /**< "en", "fr", ... */
    const comet_string_t *strings;
} comet_lang_t;

/** Every built-in language, NULL-tag terminated; English first, complete. */
extern const comet_lang_t comet_langs[];

/** A built-in language by tag ("fr", "fr-CH" and "FR" all find French); NULL if none. */
const comet_lang_t *comet_lang_find(const char *tag, apr_size_t len);

/**
 * The best built-in language for an Accept-Language header (quality values
 * honoured, "fr-CH" matches "fr", "*" matches English); English if nothing
 * matches or the header is absent or malformed.
 */
const comet_lang_t *comet_lang_negotiate(const char *accept_language);

/**
 * The text of `key` in `lang`, else in English; NULL if no table has it.
 */
const char *comet_lang_text(const comet_lang_t *lang, const char *key);

/**
 * Append the table of `lang` as a JSON object, every English key present
 * (English text where the language lacks one), then `over`: n pairs of
 * key/text that replace or add strings (CometTranslate).
 * @return 0 or -1 (out of memory)
 */
int comet_lang_json(comet_buf_t *out, const comet_lang_t *lang, const char *const *over,
                    apr_size_t n);

#endif /* COMET_I18N_H */
