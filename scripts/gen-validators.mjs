// Compiles the JSON Schemas ahead of time into standalone validator code, so the CNI
// path never loads ajv or compiles a schema at run time.
import { readFileSync, writeFileSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2019 from 'ajv/dist/2019.js';
import standaloneCode from 'ajv/dist/standalone/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schemaDir = join(root, 'schemas');
const load = (p) => JSON.parse(readFileSync(join(schemaDir, p), 'utf8'));

const ajv = new Ajv2019({ code: { source: true, esm: true }, allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
for (const f of readdirSync(join(schemaDir, 'modes'))) ajv.addSchema(load(join('modes', f)));
ajv.addSchema(load('ipam.schema.json'));
ajv.addSchema(load('config.schema.json'));
for (const f of readdirSync(schemaDir).filter((f) => f.endsWith('.schema.json') && f.startsWith('plan'))) ajv.addSchema(load(f));

const exportsMap = { validateConfig: 'https://testcni.dev/schemas/config.json' };
const planSchema = readdirSync(schemaDir).includes('plan.schema.json');
if (planSchema) exportsMap.validatePlan = 'https://testcni.dev/schemas/plan.json';

const out = join(schemaDir, 'generated');
// Atomic, so a test importing the validators while a build runs never reads half a file.
function writeAtomic(path, text) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}
mkdirSync(out, { recursive: true });
// ajv's "esm" output still calls require() for its runtime helpers; turn those into imports.
let code = standaloneCode.default(ajv, exportsMap);
const imports = [];
code = code.replace(/require\("(ajv\/dist\/runtime\/[a-z0-9]+)"\)\.default/g, (_, mod) => {
  const name = `__rt${imports.length}`;
  imports.push(`import ${name} from "${mod}.js";`);
  return `${name}.default`;
});
if (/require\(/.test(code)) throw new Error('generated validator still calls require()');
writeAtomic(join(out, 'validators.js'), imports.join('\n') + '\n' + code);
writeAtomic(
  join(out, 'validators.d.ts'),
  Object.keys(exportsMap)
    .map((n) => `export declare const ${n}: ((data: unknown) => boolean) & { errors?: import('../validate.ts').AjvError[] | null };`)
    .join('\n') + '\n',
);
console.error(`validators: ${Object.keys(exportsMap).join(', ')} -> schemas/generated/`);
