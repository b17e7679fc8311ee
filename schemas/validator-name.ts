// The export name of a mode's ahead-of-time compiled validator (shared by the build and the loader).
export function validatorName(mode: string): string {
  return `validate_${mode.replace(/[^A-Za-z0-9]/g, '_')}`;
}
