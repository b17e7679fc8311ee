// Precompiles templates/*.hbs into modules that need only the handlebars runtime: a template
// error fails the build, not the agent. Strict (a name missing from the view model throws) and
// without HTML escaping (the outputs are configuration files, not web pages: the view models
// check every value they pass on).
import { readFileSync, writeFileSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'templates');
const out = join(dir, 'generated');
mkdirSync(out, { recursive: true });
const writeAtomic = (path, text) => {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
};
for (const f of readdirSync(dir).filter((n) => n.endsWith('.hbs')).sort()) {
  const base = f.replace(/\.hbs$/, '');
  const name = base.replace(/[^A-Za-z0-9]+(.)/g, (_, c) => c.toUpperCase());
  const spec = Handlebars.precompile(readFileSync(join(dir, f), 'utf8'), { strict: true, noEscape: true, knownHelpersOnly: true });
  writeAtomic(join(out, `${base}.js`), `// Generated from templates/${f} by scripts/gen-templates.mjs: do not edit.\nexport const ${name}Template = ${spec};\n`);
  writeAtomic(join(out, `${base}.d.ts`), `export declare const ${name}Template: object;\n`);
}
