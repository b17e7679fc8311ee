// Runs the ahead-of-time compiled validators and turns ajv errors into CNI errors that
// name the offending field.
import * as generated from './generated/validators.js';
import { CniError, Code } from '../cni/errors.ts';

type Validator = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

const BY_MODE: Record<string, Validator> = {
  'host-gw': generated.validate_host_gw,
  vxlan: generated.validate_vxlan,
  ipip: generated.validate_ipip,
  ipvlan: generated.validate_ipvlan,
  macvlan: generated.validate_macvlan,
};

export interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
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

export function checkConfigShape(config: unknown): void {
  const isObject = config !== null && typeof config === 'object' && !Array.isArray(config);
  const mode = isObject ? ((config as { mode?: unknown }).mode ?? 'host-gw') : 'host-gw';
  const known = typeof mode === 'string' && Object.hasOwn(BY_MODE, mode);
  // An unknown mode is reported with whatever else the common schema finds wrong.
  const validate = BY_MODE[known ? (mode as string) : 'host-gw']!;
  const ok = validate(config);
  if (ok && known) return;
  const modeError: AjvError = { instancePath: '/mode', keyword: 'enum', params: { allowedValues: Object.keys(BY_MODE) }, message: 'must be equal to one of the allowed values' };
  const all = [...(known ? [] : [modeError]), ...(ok ? [] : (validate.errors ?? []))];
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
