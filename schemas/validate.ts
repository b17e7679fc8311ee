// Runs the ahead-of-time compiled validators and turns ajv errors into CNI errors that
// name the offending field.
import * as generated from './generated/validators.js';
import { CniError, Code } from '../model/errors.ts';
import type { AnyMode } from '../planner/mode.ts';
import type { ModeRegistry } from '../planner/registry.ts';
import { validatorName } from './validator-name.ts';

export type Validator = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

export interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}


const GENERATED = generated as unknown as Record<string, Validator | undefined>;

function validatorOf(mode: AnyMode): Validator {
  const v = GENERATED[validatorName(mode.name)] ?? (mode.validator as Validator | undefined);
  if (!v) throw new Error(`no validator for mode ${mode.name}: rebuild (npm run build) or give the mode its own`);
  return v;
}

function fieldOf(e: AjvError): string {
  const path = e.instancePath.replace(/^\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const extra = (e.params.additionalProperty ?? e.params.unevaluatedProperty ?? e.params.missingProperty) as string | undefined;
  if (extra !== undefined) path.push(extra);
  return path.filter(Boolean).join('.') || '(config)';
}

// Errors from the if/then wrappers repeat what the inner keyword already said. ("not" is no
// wrapper: ajv drops its inner errors, so its own error is the only report, e.g. uplink ".".)
const WRAPPERS = new Set(['if', 'anyOf', 'allOf']);

/** Checks the config's shape against its mode's closed schema. An unknown mode is reported
 *  with whatever else the default mode's schema finds wrong. */
export function checkConfigShape(config: unknown, registry: ModeRegistry): void {
  const isObject = config !== null && typeof config === 'object' && !Array.isArray(config);
  const name = isObject ? ((config as { mode?: unknown }).mode ?? registry.defaultMode) : registry.defaultMode;
  const mode = typeof name === 'string' ? registry.get(name) : null;
  const validate = validatorOf(mode ?? registry.require(registry.defaultMode));
  // A foreign mode fails the default schema's `mode` const: report it as the enum it is.
  const ok = validate(mode ? config : { ...(config as object), mode: registry.defaultMode });
  if (ok && mode) return;
  const modeError: AjvError = { instancePath: '/mode', keyword: 'enum', params: { allowedValues: registry.names() }, message: 'must be equal to one of the allowed values' };
  const all = [...(mode ? [] : [modeError]), ...(ok ? [] : (validate.errors ?? []))];
  const inner = all.filter((e) => !WRAPPERS.has(e.keyword));
  const errors = inner.length > 0 ? inner : all; // never turn a failure into an empty report
  const unknown = errors.filter((e) => e.keyword === 'additionalProperties' || e.keyword === 'unevaluatedProperties');
  // A wrong value is reported before an unknown key: it is the likelier typo to fix first.
  const invalid = errors.filter((e) => !unknown.includes(e));
  if (invalid.length > 0) {
    const details = invalid.map((e) => `${fieldOf(e)}: ${e.message ?? e.keyword}${e.keyword === 'enum' ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}`);
    throw new CniError(Code.InvalidConfig, `invalid network config: ${fieldOf(invalid[0]!)}`, details.join('; '));
  }
  const names = unknown.map(fieldOf);
  throw new CniError(Code.UnsupportedField, `unsupported field: ${names[0]}`, `not accepted here: ${names.join(', ')}`);
}
