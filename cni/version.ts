// cniVersion negotiation: which spec versions we speak and what each allows.
import { CniError, Code } from '../model/errors.ts';
import { SUPPORTED_VERSIONS, type CniVersion } from '../model/cni-version.ts';

export { SUPPORTED_VERSIONS, LATEST, type CniVersion } from '../model/cni-version.ts';

export function isSupported(v: unknown): v is CniVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

export function requireSupported(v: unknown): CniVersion {
  if (isSupported(v)) return v;
  throw new CniError(
    Code.IncompatibleVersion,
    'incompatible CNI version',
    `cniVersion ${JSON.stringify(v)} is not one of ${SUPPORTED_VERSIONS.join(', ')}`,
  );
}

/** Numeric comparison of dotted versions. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function atLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/** The first spec version that has each verb (CHECK came in 0.4.0, GC and STATUS in 1.1.0). */
const MIN_VERSION: Record<string, string> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

export function requireVerbVersion(verb: string, version: string): void {
  const min = MIN_VERSION[verb];
  if (min && !atLeast(version, min)) {
    throw new CniError(Code.IncompatibleVersion, `${verb} needs cniVersion ${min} or later`, `config has cniVersion ${version}`);
  }
}
