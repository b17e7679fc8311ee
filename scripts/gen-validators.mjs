// Compiles the JSON Schemas ahead of time into standalone validator code, so the CNI
// path never loads ajv or compiles a schema at run time.
import { writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { tsImport } from 'tsx/esm/api';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2019 from 'ajv/dist/2019.js';
import standaloneCode from 'ajv/dist/standalone/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const schemaDir = join(root, 'schemas');

// The modes come from the registry itself (TypeScript, loaded through tsx at build time only).
const { MODES } = await tsImport('../planner/registry.ts', import.meta.url);
const { composeSchema, IPAM_SCHEMA } = await tsImport('../schemas/compose.ts', import.meta.url);
const { validatorName } = await tsImport('../schemas/validator-name.ts', import.meta.url);

const ajv = new Ajv2019({ code: { source: true, esm: true }, allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true });
ajv.addSchema(IPAM_SCHEMA);

// One closed schema per mode: the common keys plus the mode's own, nothing else. A flat
// schema compiles to a validator about half the size of one with if/then branches and
// unevaluatedProperties, and its first run (on every plugin start) is that much cheaper.
const exportsMap = {};
for (const mode of MODES.all()) {
  const schema = composeSchema(mode);
  ajv.addSchema(schema);
  exportsMap[validatorName(mode.name)] = schema.$id;
}

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
