// The README's table of what the DaemonSet gives the agent per mode is derived from the modes'
// ModeDeploy (planner/mode.ts), which `testcni manifests` renders: a mode that changes its needs
// shows up here until the table is regenerated (UPDATE_GOLDEN=1).
import { test } from 'node:test';
import { MODES } from '../../planner/registry.ts';
import { loadConfig } from '../../cni/config.ts';
import { checkGeneratedSection } from '../helpers/readme.ts';

/** A mode's network with every key at its default: what the table describes. */
const defaults = (mode: string) => loadConfig({ cniVersion: '1.1.0', name: 'testcni', type: 'testcni', subnet: '10.244.0.0/16', mode }).config;

function table(): string {
  const rows = MODES.all().map((m) => {
    const d = m.deploy;
    const caps = (d?.capabilities ?? []).map((c) => `\`${c.name}\` (${c.why})`).join('; ') || 'none';
    const mounts = [
      ...(d?.hostPaths?.(defaults(m.name)) ?? []).map((p) => `\`${p.path}\`${p.propagation === 'HostToContainer' ? ' (HostToContainer)' : ''}: ${p.why}`),
      ...(d?.netSysctls ? [`\`/proc/sys/net\` at \`/host/proc/sys/net\` (\`procSys\`): ${d.netSysctls}`] : []),
    ].join('; ') || '—';
    const programs = (d?.programs ?? []).map((p) => `\`${p.name}\` (${p.package}): ${p.why}`).join('; ') || '—';
    const chain = Object.entries(d?.unchainable ?? {}).map(([p, why]) => `\`${p}\`: ${why}`).join('; ') || 'any';
    return `| \`${m.name}\` | ${caps} | ${mounts} | ${programs} | ${chain} |`;
  });
  return [
    '| mode | agent capabilities (beyond none) | host mounts beyond the common ones (default config) | programs in the image | `--chain` |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

test('README: what the DaemonSet gives the agent per mode is the modes\' ModeDeploy', () => {
  checkGeneratedSection('deploy', table());
});
