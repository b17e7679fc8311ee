// One closed JSON Schema per mode: the keys every mode accepts plus the mode's own, nothing
// else. The build compiles them ahead of time (scripts/gen-validators.mjs); a mode registered at
// run time (a test's) compiles its own with compileModeValidator.
import common from './config.schema.json' with { type: 'json' };
import ipam from './ipam.schema.json' with { type: 'json' };
import type { AnyMode, JsonSchema } from '../planner/mode.ts';

export const IPAM_SCHEMA: JsonSchema = ipam;

export function modeSchemaId(name: string): string {
  return `https://testcni.dev/schemas/config-${name}.json`;
}

export function composeSchema(mode: Pick<AnyMode, 'name' | 'summary' | 'schema'>): JsonSchema {
  return {
    $id: modeSchemaId(mode.name),
    title: `${common.title} + ${mode.name}: ${mode.summary}`,
    type: 'object',
    required: common.required,
    properties: { ...common.properties, mode: { const: mode.name }, ...mode.schema },
    additionalProperties: false,
    $defs: common.$defs,
  };
}

/** What ajv needs of an instance to compile a mode's validator (the build's options). */
interface AjvLike {
  addSchema(schema: JsonSchema): unknown;
  getSchema(id: string): unknown;
  compile(schema: JsonSchema): unknown;
}

/** For modes registered at run time: compile the mode's closed schema with the caller's ajv. */
export function compileModeValidator(ajv: AjvLike, mode: Pick<AnyMode, 'name' | 'summary' | 'schema'>): (data: unknown) => boolean {
  if (!ajv.getSchema(String(IPAM_SCHEMA.$id))) ajv.addSchema(IPAM_SCHEMA);
  return ajv.compile(composeSchema(mode)) as (data: unknown) => boolean;
}
