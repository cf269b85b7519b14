/* Licensed under the Apache License, Version 2.0 (the "License"); see LICENSE. */

/*
 * The npm package's ES modules, written by `npm pack` (prepack) into dist/:
 * comet.js and socket.js as they are, wrapped as the module serves them at
 * <location>/comet.mjs and socket.mjs, with the settings a page cannot get
 * from a location: class names Pxxo_Widget_Comet and Pxxo_Widget_Socket,
 * base "/comet" (the option url says another), every transport, the
 * heartbeat the server's open line tells, the English strings built into
 * comet.js (useStrings() or <location>/i18n/<lang>.js for others).
 *
 *   node build-esm.mjs        (from js/)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { version } = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
const settings = `{ version: ${JSON.stringify(version)}, classId: "Pxxo_Widget_Comet", base: "/comet", `
                 + 'heartbeat: 0, transports: null, lang: "en", strings: {} }';

mkdirSync(join(here, 'dist'), { recursive: true });
for (const [file, name] of [['comet', 'Pxxo_Widget_Comet'], ['socket', 'Pxxo_Widget_Socket']]) {
    const code = readFileSync(join(here, `${file}.js`), 'utf8');
    writeFileSync(join(here, 'dist', `${file}.mjs`),
                  `/* mod_comet ${version}, npm package */\n(function (global) {\nvar COMET = ${settings};\n`
                  + `${code}\n})(globalThis);\nconst ${name} = globalThis.${name};\n`
                  + `export { ${name}, ${name} as default };\n`);
}
