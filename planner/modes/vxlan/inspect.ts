// vxlan's operator view: the programs attached (per device and hook, and whether they are this
// build's) and the fill of each map, for `testcni status` and the agent's metrics. Pure: the
// caller runs the queries (a failed one reads null) and hands over what they showed.
import { HOST, type Probe } from '../../../model/plan.ts';
import type { ModeInspector, ModeGauge } from '../../mode.ts';
import { MAPS, PROGRAMS, ENDPOINTS, parseDump, decodeEndpoint } from '../../../bpf/maps.ts';
import type { VxlanConfig } from './config.ts';
import { pinDirOf, mapPath, OBJECT, showPinnedQueries, pinnedObjects, pinListingQuery, pinsListed, PROGRAM_PINS } from './dataplane.ts';

interface TcAttachment { devname: string; kind: string; name: string; id: number }

const exec = (argv: string[]): Probe => ({ ns: HOST, mech: 'exec', argv, expect: { $exit: 0 } });
const OURS = new Set<string>(Object.values(PROGRAMS));
/** Above this share of its capacity a map is reported as filling up. */
export const FILL_WARNING = 0.9;

function count(o: unknown): number | null {
  try {
    return o === null || o === undefined ? null : parseDump(o).length;
  } catch {
    return null;
  }
}

export const inspector: ModeInspector<VxlanConfig> = {
  observe(config, facts) {
    const n = { pinDir: pinDirOf(config, facts) };
    const bpftool = facts.tools.bpftool!;
    return {
      pins: pinListingQuery(n),
      ...Object.fromEntries(MAPS.map((m) => [`dump:${m.name}`, exec([bpftool, '-j', 'map', 'dump', 'pinned', mapPath(n, m)])])),
      net: exec([bpftool, '-j', 'net', 'show']),
      links: exec([facts.tools.ip, '-j', 'link', 'show']),
    };
  },
  observeMore(config, facts, o) {
    const n = { pinDir: pinDirOf(config, facts) };
    const pinned = new Set(pinsListed(n, o.pins, /./));
    return {
      ...showPinnedQueries(facts.tools, 'map', MAPS.map((m) => mapPath(n, m)).filter((p) => pinned.has(p))),
      ...showPinnedQueries(facts.tools, 'prog', pinsListed(n, o.pins, PROGRAM_PINS)),
    };
  },
  report(config, facts, o) {
    const v = config.modeConfig;
    const pinDir = pinDirOf(config, facts);
    const problems: string[] = [];
    const gauges: ModeGauge[] = [];
    const capacity: Record<string, number> = { testcni_eps: v.maxEndpoints, testcni_remote: 2 * v.maxRemoteBlocks, testcni_cfg: 1 };

    const maps = pinnedObjects(o, 'map');
    const mapRows: string[][] = [];
    for (const m of MAPS) {
      const pin = mapPath({ pinDir }, m);
      const info = maps.find((x) => x.path === pin && x.max_entries !== undefined) as { max_entries: number } | undefined;
      const entries = count(o[`dump:${m.name}`]);
      if (!info) {
        problems.push(`map ${m.name} is not pinned at ${pin}`);
        mapRows.push([m.name, '-', '-', 'missing']);
        continue;
      }
      if (info.max_entries !== capacity[m.name]) problems.push(`map ${m.name} holds ${info.max_entries} entries, the config asks for ${capacity[m.name]}: takes effect once the node's pins are removed (drain it, testcni uninstall)`);
      const fill = entries === null ? null : entries / info.max_entries;
      if (fill !== null && fill >= FILL_WARNING && m.name !== 'testcni_cfg') problems.push(`map ${m.name} is ${Math.round(fill * 100)} % full (${entries} of ${info.max_entries})`);
      mapRows.push([m.name, entries === null ? '?' : String(entries), String(info.max_entries), fill === null ? '?' : `${(fill * 100).toFixed(1)} %`]);
      if (entries !== null) gauges.push({ name: 'bpf_map_entries', help: 'Entries in each of the dataplane\'s BPF maps', labels: { map: m.name }, value: entries });
      gauges.push({ name: 'bpf_map_capacity', help: 'Capacity (max_entries) of each of the dataplane\'s BPF maps', labels: { map: m.name }, value: info.max_entries });
    }

    const current = facts.objects?.[OBJECT]?.digest;
    const pinnedIn = new Map<number, string>();
    for (const p of pinnedObjects(o, 'prog')) pinnedIn.set(p.id, p.path.slice(pinDir.length + 1).split('/')[0]!);
    const net = (Array.isArray(o.net) ? o.net[0] : null) as { tc?: TcAttachment[] } | null;
    const ours = (net?.tc ?? []).map((a) => ({ ...a, prog: a.name.replace(/:.*$/, '') })).filter((a) => OURS.has(a.prog))
      .sort((a, b) => (a.devname === b.devname ? a.kind.localeCompare(b.kind) : a.devname === v.device ? -1 : b.devname === v.device ? 1 : a.devname.localeCompare(b.devname)));
    const build = (id: number) => {
      const dir = pinnedIn.get(id);
      if (!dir) return 'not pinned here';
      return current && dir === `progs-${current}` ? 'this build' : dir.replace(/^progs-/, 'older build ');
    };
    const progRows = ours.map((a) => [a.devname, a.kind.replace(/^clsact\//, ''), a.prog, String(a.id), build(a.id)]);
    for (const [dir, prog] of [['ingress', PROGRAMS.fromVxlan], ['egress', PROGRAMS.toVxlan]] as const) {
      if (!ours.some((a) => a.devname === v.device && a.kind === `clsact/${dir}` && a.prog === prog)) problems.push(`${prog} is not attached to ${v.device} ${dir}`);
    }
    for (const prog of Object.values(PROGRAMS)) {
      gauges.push({ name: 'bpf_programs_attached', help: 'Devices each dataplane program is attached to', labels: { program: prog }, value: ours.filter((a) => a.prog === prog).length });
    }
    // A pod with an endpoint entry whose veth runs no program sends around the dataplane.
    const linkNames = new Map(((Array.isArray(o.links) ? o.links : []) as { ifname: string; ifindex: number }[]).map((l) => [l.ifindex, l.ifname]));
    let endpoints: { ip: string; ifindex: number }[] = [];
    try {
      endpoints = o[`dump:${ENDPOINTS.name}`] ? parseDump(o[`dump:${ENDPOINTS.name}`]).map(decodeEndpoint) : [];
    } catch { /* reported as "?" above */ }
    for (const e of endpoints) {
      const dev = linkNames.get(e.ifindex);
      if (!dev) problems.push(`endpoint ${e.ip}: its host veth (ifindex ${e.ifindex}) is gone (GC removes the entry)`);
      else if (!ours.some((a) => a.devname === dev && a.prog === PROGRAMS.fromPod)) problems.push(`endpoint ${e.ip}: ${PROGRAMS.fromPod} is not attached to ${dev}`);
    }
    return {
      tables: [
        { title: `BPF PROGRAMS (pins in ${pinDir})`, rows: [['DEVICE', 'HOOK', 'PROGRAM', 'ID', 'BUILD'], ...progRows] },
        { title: 'BPF MAPS', rows: [['MAP', 'ENTRIES', 'CAPACITY', 'FILL'], ...mapRows] },
      ],
      gauges,
      problems,
    };
  },
};
